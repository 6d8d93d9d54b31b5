//! `kage keygen`.

use crate::harness::{Dir, mode, recipient_of, tool};

#[test]
fn identity_file_is_age_keygen_format_and_private() {
    let dir = Dir::new();
    let run = dir.kage(&["keygen", "-o", "key.txt"]).run();
    run.ok();
    let text = dir.read("key.txt");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("# created: ") && lines[0].ends_with('Z'),
        "{text}"
    );
    assert!(lines[1].starts_with("# public key: age1"), "{text}");
    assert!(lines[2].starts_with("AGE-SECRET-KEY-1"), "{text}");
    assert!(text.ends_with('\n'));
    assert_eq!(mode(&dir.path("key.txt")), 0o600);
    let recipient = recipient_of(&text);
    assert_eq!(run.stderr, format!("Public key: {recipient}\n"));
    // the real age-keygen derives the same recipient from the file
    let age_keygen = tool("KAGE_TEST_AGE_KEYGEN", "age-keygen");
    let out = dir.command(age_keygen, &["-y", "key.txt"]).run().ok();
    assert_eq!(out.trim(), recipient);
}

#[test]
fn keygen_never_overwrites() {
    let dir = Dir::new();
    dir.write("key.txt", "keep");
    dir.kage(&["keygen", "-o", "key.txt"]).run().fails(1);
    assert_eq!(dir.read("key.txt"), "keep");
}

#[test]
fn keygen_to_stdout() {
    let dir = Dir::new();
    let out = dir.kage(&["keygen"]).run().ok();
    assert!(out.contains("AGE-SECRET-KEY-1"));
}
