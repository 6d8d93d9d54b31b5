//! Output paths (docs/cli.md, "Output paths"): devices and FIFOs are written through, symlinks
//! followed (the link stays), an output over an input and two outputs onto one file are refused
//! before anything is written.

use std::os::unix::fs::{FileTypeExt, symlink};
use std::path::Path;

use crate::harness::{Dir, secret_yaml};

/// A directory with an identity, its recipient and a plaintext Secret `plain.yaml`.
fn setup() -> (Dir, String) {
    let d = Dir::new();
    let r = d.keygen("key.txt");
    d.write("plain.yaml", secret_yaml("db", "prod"));
    (d, r)
}

fn is_symlink(p: &Path) -> bool {
    std::fs::symlink_metadata(p)
        .unwrap()
        .file_type()
        .is_symlink()
}

/// A character device to write to: a copy of /dev/null's node made in the test's directory
/// (as root), else /dev/null itself (whose directory a non-root user cannot write to).
fn char_device(d: &Dir) -> std::path::PathBuf {
    let p = d.path("null");
    let made = std::process::Command::new("mknod")
        .args([p.to_str().unwrap(), "c", "1", "3"])
        .status()
        .is_ok_and(|s| s.success());
    if made { p } else { "/dev/null".into() }
}

#[test]
fn a_character_device_is_written_through() {
    let (d, r) = setup();
    let dev = char_device(&d);
    let dev_s = dev.to_str().unwrap();
    d.kage(&["seal", "plain.yaml", "-r", &r, "-o", dev_s])
        .run()
        .ok();
    assert!(
        std::fs::metadata(&dev)
            .unwrap()
            .file_type()
            .is_char_device(),
        "{dev_s} replaced by a regular file"
    );
    d.kage(&["seal", "plain.yaml", "-r", &r, "-o", "sealed.yaml"])
        .run()
        .ok();
    d.kage(&["unseal", "sealed.yaml", "-i", "key.txt", "-o", dev_s])
        .run()
        .ok();
    assert!(
        std::fs::metadata(&dev)
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn a_fifo_is_written_through() {
    let (d, r) = setup();
    let fifo = d.path("pipe");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(ok.success());
    let f2 = fifo.clone();
    let reader = std::thread::spawn(move || std::fs::read_to_string(f2).unwrap());
    d.kage(&["seal", "plain.yaml", "-r", &r, "-o", "pipe"])
        .run()
        .ok();
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo(),
        "the FIFO was replaced"
    );
    let got = reader.join().unwrap();
    assert!(got.starts_with("apiVersion: kage.dev/v1alpha1\n"), "{got}");
}

#[test]
fn sockets_are_refused() {
    let (d, r) = setup();
    let _sock = std::os::unix::net::UnixListener::bind(d.path("sock")).unwrap();
    let err = d
        .kage(&["seal", "plain.yaml", "-r", &r, "-o", "sock"])
        .run()
        .fails(1);
    assert!(err.contains("writing sock: is a socket"), "{err}");
    assert!(
        std::fs::symlink_metadata(d.path("sock"))
            .unwrap()
            .file_type()
            .is_socket()
    );
}

#[test]
fn in_place_through_a_symlink_replaces_the_target_and_keeps_the_link() {
    let (d, r) = setup();
    symlink("plain.yaml", d.path("link.yaml")).unwrap();
    d.kage(&["seal", "--in-place", "link.yaml", "-r", &r])
        .run()
        .ok();
    assert!(is_symlink(&d.path("link.yaml")), "the link was replaced");
    let target = d.read("plain.yaml");
    assert!(
        target.starts_with("apiVersion: kage.dev/v1alpha1\n") && !target.contains("s3cr3t"),
        "the target still holds plaintext: {target}"
    );
    let plain = d.kage(&["unseal", "link.yaml", "-i", "key.txt"]).run().ok();
    assert!(plain.contains("kind: Secret"), "{plain}");
}

#[test]
fn output_onto_a_symlink_follows_it() {
    let (d, r) = setup();
    d.write("out/real.yaml", "old\n");
    symlink("out/real.yaml", d.path("out.yaml")).unwrap();
    d.kage(&["seal", "plain.yaml", "-r", &r, "-o", "out.yaml"])
        .run()
        .ok();
    assert!(is_symlink(&d.path("out.yaml")));
    assert!(
        d.read("out/real.yaml")
            .starts_with("apiVersion: kage.dev/v1alpha1\n")
    );
    // only the target: no temp file left beside the link or the target
    assert_eq!(std::fs::read_dir(d.path("out")).unwrap().count(), 1);
    // A dangling link is refused: kage never creates a file the user did not name.
    symlink("nowhere/x.yaml", d.path("dangling.yaml")).unwrap();
    let err = d
        .kage(&["seal", "plain.yaml", "-r", &r, "-o", "dangling.yaml"])
        .run()
        .fails(1);
    assert!(
        err.contains("dangling.yaml: a symlink to nowhere/x.yaml, which does not exist"),
        "{err}"
    );
    assert!(is_symlink(&d.path("dangling.yaml")));
}

#[test]
fn an_output_over_an_input_is_refused() {
    let (d, r) = setup();
    let before = d.read("plain.yaml");
    std::fs::hard_link(d.path("plain.yaml"), d.path("hard.yaml")).unwrap();
    symlink("plain.yaml", d.path("soft.yaml")).unwrap();
    for out in ["plain.yaml", "./plain.yaml", "hard.yaml", "soft.yaml"] {
        for sops in [false, true] {
            let mut args = vec!["seal", "plain.yaml", "-r", &r, "-o", out];
            if sops {
                args.push("--sops");
            }
            let err = d.kage(&args).run().fails(2);
            assert!(
                err.contains("refusing to write over the input plain.yaml"),
                "{out}: {err}"
            );
            assert!(err.contains("--in-place"), "{err}");
            assert_eq!(d.read("plain.yaml"), before, "{out}");
        }
    }
    // unseal never writes plaintext over the file it read, through a link either
    d.kage(&["seal", "plain.yaml", "-r", &r, "-o", "sealed.yaml"])
        .run()
        .ok();
    symlink("sealed.yaml", d.path("sealed-link.yaml")).unwrap();
    let sealed = d.read("sealed.yaml");
    let err = d
        .kage(&[
            "unseal",
            "sealed.yaml",
            "-i",
            "key.txt",
            "-o",
            "sealed-link.yaml",
        ])
        .run()
        .fails(2);
    assert!(err.contains("refusing to write plaintext over"), "{err}");
    assert_eq!(d.read("sealed.yaml"), sealed);
}

#[test]
fn colliding_outputs_are_refused_before_anything_is_written() {
    let (d, r) = setup();
    d.write("a/db.yaml", secret_yaml("db", "a"));
    d.write("b/db.yaml", secret_yaml("db", "b"));
    d.write("c/other.yaml", secret_yaml("other", "c"));
    std::fs::create_dir(d.path("out")).unwrap();
    let err = d
        .kage(&[
            "seal",
            "c/other.yaml",
            "a/db.yaml",
            "b/db.yaml",
            "-r",
            &r,
            "-o",
            "out",
        ])
        .run()
        .fails(2);
    assert!(
        err.contains("a/db.yaml and b/db.yaml would both be written to out/db.yaml"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(d.path("out")).unwrap().count(), 0);
    // the same file twice in place (here through a link): refused, nothing sealed
    symlink("a/db.yaml", d.path("alias.yaml")).unwrap();
    let before = d.read("a/db.yaml");
    let err = d
        .kage(&["seal", "--in-place", "a/db.yaml", "alias.yaml", "-r", &r])
        .run()
        .fails(2);
    assert!(err.contains("would both be written"), "{err}");
    assert_eq!(d.read("a/db.yaml"), before);
    // unseal into one directory: the same rule
    for n in ["a", "b"] {
        d.kage(&[
            "seal",
            &format!("{n}/db.yaml"),
            "-r",
            &r,
            "-o",
            &format!("{n}/db.sealed.yaml"),
        ])
        .run()
        .ok();
    }
    let err = d
        .kage(&[
            "unseal",
            "a/db.sealed.yaml",
            "b/db.sealed.yaml",
            "-i",
            "key.txt",
            "-o",
            "out",
        ])
        .run()
        .fails(2);
    assert!(err.contains("would both be written"), "{err}");
    assert_eq!(std::fs::read_dir(d.path("out")).unwrap().count(), 0);
}
