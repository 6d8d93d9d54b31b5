//! Round trips with the real sops and age binaries (never skipped: a missing tool fails).

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use kage_core::document::{EmitOptions, Format, emit, parse};
use kage_core::keys::{Identity, KeyRing, format_identity_file};
use kage_core::sealed::{Binding, Scope, SealedValue, seal};
use kage_core::sops::{EncryptOptions, Selection, decrypt, encrypt};

use crate::common::{age, identity, read, run, sops, vectors};
use crate::golden::numbers_as_f64;

const PLAIN_YAML: &[(&str, &str)] = &[
    (
        "types",
        "# head comment\nname: svc\nport: 443\nratio: 0.5\nweight: 2.50\nbig: 1e21\nneg: -7\nhex: 0x1F\non: true\noff: False\nwhen: 2024-01-02\nstamp: 2001-12-14t21:59:43.10-05:00\nnothing: null\nempty: \"\"\nquoted: \"123\"\nyes_word: yes\nunicode: \"日本 é\"\n",
    ),
    (
        "nested",
        "server:\n  # before users\n  users:\n    - name: alice\n      admin: true\n    - name: bob  # inline\n      admin: false\n  matrix:\n    - [1, 2]\n    - [x, y]\n  ports: [80, 8080]\n  description: |\n    line one\n    line two\n  folded: >\n    folded\n    text\n  public_unencrypted: visible\n  nested_unencrypted:\n    inner: also visible\n# trailing root comment\n",
    ),
    (
        "multi",
        "a: 1\nb: [x, null]\n---\n# second\nc: true\nd: {e: f}\n",
    ),
    (
        "secret",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\ntype: Opaque\ndata:\n  password: aHVudGVyMg==\nstringData:\n  user: admin\n",
    ),
    (
        "list_comments",
        "list:\n  # in list\n  - a\n  - b  # after b\nm:\n  k: v\n  # trailing in m\n",
    ),
];

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn sops_decrypt(dir: &Path, file: &Path, format: &str, keys: &[Identity]) -> Vec<u8> {
    let keyfile = dir.join("sops-keys.txt");
    let text: String = keys
        .iter()
        .map(|k| format_identity_file(k, jiff::Timestamp::now()).to_string())
        .collect();
    std::fs::write(&keyfile, text).unwrap();
    run(Command::new(sops())
        .args(["--decrypt", "--input-type", format, "--output-type", format])
        .arg(file)
        .env("SOPS_AGE_KEY_FILE", &keyfile)
        .env_remove("SOPS_AGE_KEY")
        .current_dir(dir))
    .stdout
}

fn same_data(a: &[u8], b: &[u8], format: Format) {
    let a = parse(a, format).unwrap();
    let b = parse(b, format).unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            numbers_as_f64(x.to_json_value()),
            numbers_as_f64(y.to_json_value())
        );
    }
}

fn kage_to_sops(
    name: &str,
    plain: &[u8],
    format: Format,
    opts: &EncryptOptions,
    keys: &[Identity],
) {
    let dir = tempfile::tempdir().unwrap();
    let docs = parse(plain, format).unwrap();
    let enc = encrypt(&docs, opts).unwrap();
    let text = emit(&enc, format, &EmitOptions::sops()).unwrap();
    let ext = if format == Format::Json {
        "json"
    } else {
        "yaml"
    };
    let file = write(dir.path(), &format!("{name}.enc.{ext}"), text.as_bytes());
    let out = sops_decrypt(dir.path(), &file, ext, keys);
    same_data(&out, plain, format);
    // And kage reads its own output back.
    let back = decrypt(&parse(text.as_bytes(), format).unwrap(), keys).unwrap();
    let layout = EmitOptions::default();
    assert_eq!(
        emit(&back, format, &layout).unwrap(),
        emit(&docs, format, &layout).unwrap(),
        "{name}"
    );
}

#[test]
fn kage_encrypts_sops_decrypts_yaml() {
    let key = identity("sops/key.txt");
    for (name, plain) in PLAIN_YAML {
        let mut opts = EncryptOptions::new(vec![key.recipient()]);
        if *name == "secret" {
            opts.selection = Selection::kubernetes_secret();
        }
        kage_to_sops(
            name,
            plain.as_bytes(),
            Format::Yaml,
            &opts,
            std::slice::from_ref(&key),
        );
    }
}

#[test]
fn kage_encrypts_sops_decrypts_selection_rules_and_mac_only() {
    let key = identity("sops/key.txt");
    let plain =
        b"# sops:enc\npassword: pw\nuser_plain: bob\nnested:\n  token_secret: t\n  other: o\n";
    for selection in [
        Selection::EncryptedSuffix("_secret".into()),
        Selection::UnencryptedSuffix("_plain".into()),
        Selection::EncryptedRegex("^pass".into()),
        Selection::UnencryptedRegex("^user".into()),
        Selection::EncryptedCommentRegex("sops:enc".into()),
        Selection::UnencryptedCommentRegex("sops:enc".into()),
    ] {
        for mac_only in [false, true] {
            let opts = EncryptOptions {
                key_groups: vec![vec![key.recipient()]],
                shamir_threshold: 0,
                selection: selection.clone(),
                mac_only_encrypted: mac_only,
            };
            kage_to_sops(
                "rules",
                plain,
                Format::Yaml,
                &opts,
                std::slice::from_ref(&key),
            );
        }
    }
}

#[test]
fn kage_encrypts_sops_decrypts_json_two_recipients_and_shamir() {
    let a = identity("sops/key.txt");
    let b = identity("sops/g2.txt");
    let plain = read("sops/config.json");
    // Two recipients in one group: each key alone decrypts.
    let opts = EncryptOptions::new(vec![a.recipient(), b.recipient()]);
    kage_to_sops("two", &plain, Format::Json, &opts, std::slice::from_ref(&a));
    kage_to_sops("two", &plain, Format::Json, &opts, std::slice::from_ref(&b));
    // Three groups, threshold 2: two keys needed.
    let c = Identity::generate();
    let opts = EncryptOptions {
        key_groups: vec![
            vec![a.recipient()],
            vec![b.recipient()],
            vec![c.recipient()],
        ],
        shamir_threshold: 2,
        selection: Selection::default(),
        mac_only_encrypted: false,
    };
    kage_to_sops(
        "shamir",
        &plain,
        Format::Json,
        &opts,
        &[a.clone(), c.clone()],
    );
    kage_to_sops(
        "shamir",
        PLAIN_YAML[1].1.as_bytes(),
        Format::Yaml,
        &opts,
        &[b, c],
    );
}

fn sops_encrypt(dir: &Path, name: &str, plain: &[u8], format: &str, args: &[&str]) -> Vec<u8> {
    let file = write(dir, name, plain);
    run(Command::new(sops())
        .args(["--encrypt", "--input-type", format, "--output-type", format])
        .args(args)
        .arg(&file)
        .current_dir(dir))
    .stdout
}

#[test]
fn sops_encrypts_kage_decrypts() {
    let key = identity("sops/key.txt");
    let recipient = key.recipient().to_string();
    let dir = tempfile::tempdir().unwrap();
    for (name, plain) in PLAIN_YAML {
        let mut args = vec!["--age", recipient.as_str()];
        if *name == "secret" {
            args.extend([
                "--encrypted-regex",
                "^(data|stringData)$",
                "--mac-only-encrypted",
            ]);
        }
        let enc = sops_encrypt(
            dir.path(),
            &format!("{name}.yaml"),
            plain.as_bytes(),
            "yaml",
            &args,
        );
        let docs = parse(&enc, Format::Yaml).unwrap();
        let got = decrypt(&docs, std::slice::from_ref(&key))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", String::from_utf8_lossy(&enc)));
        let want = parse(plain.as_bytes(), Format::Yaml).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(
                numbers_as_f64(g.to_json_value()),
                numbers_as_f64(w.to_json_value()),
                "{name}"
            );
        }
    }
    let json = read("sops/config.json");
    let enc = sops_encrypt(dir.path(), "c.json", &json, "json", &["--age", &recipient]);
    let got = decrypt(
        &parse(&enc, Format::Json).unwrap(),
        std::slice::from_ref(&key),
    )
    .unwrap();
    same_data(
        emit(&got, Format::Json, &EmitOptions::default())
            .unwrap()
            .as_bytes(),
        &json,
        Format::Json,
    );
}

#[test]
fn sops_shamir_key_groups_kage_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        vectors().join("sops/shamir.sops.yaml"),
        dir.path().join(".sops.yaml"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    let plain = read("sops/shamir.yaml");
    std::fs::write(dir.path().join("secrets/s.yaml"), &plain).unwrap();
    let enc = run(Command::new(sops())
        .args(["--encrypt", "secrets/s.yaml"])
        .current_dir(dir.path()))
    .stdout;
    let docs = parse(&enc, Format::Yaml).unwrap();
    let got = decrypt(&docs, &[identity("sops/key.txt"), identity("sops/g2.txt")]).unwrap();
    assert_eq!(*got, parse(&plain, Format::Yaml).unwrap());
}

#[test]
fn age_cli_opens_a_sealed_value() {
    let id = Identity::generate();
    let dir = tempfile::tempdir().unwrap();
    let keyfile = write(
        dir.path(),
        "key.txt",
        format_identity_file(&id, jiff::Timestamp::now()).as_bytes(),
    );
    let binding = Binding::new(Scope::Strict, "prod", "db", "password");
    let sealed = seal(b"hunter2\n", &binding, &[id.recipient()]).unwrap();
    let ciphertext = SealedValue::parse(&sealed).unwrap().ciphertext;
    let ct = write(dir.path(), "value.age", &ciphertext);
    let out = run(Command::new(age())
        .arg("-d")
        .arg("-i")
        .arg(&keyfile)
        .arg(&ct))
    .stdout;
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "kage.dev/binding: v1\nscope: strict\nnamespace: prod\nname: db\nkey: password\n\nhunter2\n"
    );
    // The age CLI's own output opens with kage too (same format both ways is age's job; we
    // check the binding-less file is refused as malformed, not panicking).
    let plain_file = write(dir.path(), "p.txt", b"no header");
    let encrypted = run(Command::new(age())
        .arg("-r")
        .arg(id.recipient().to_string())
        .arg(&plain_file))
    .stdout;
    let forged = format!(
        "kage:v1:{}:{}",
        id.kid(),
        base64::engine::general_purpose::STANDARD.encode(encrypted)
    );
    let ring = KeyRing::from_identities([id]);
    let err = kage_core::sealed::open(&forged, &binding, &ring).unwrap_err();
    assert!(matches!(err, kage_core::Error::Corrupt { .. }), "{err}");
}

#[test]
fn update_keys_and_rotate_are_read_by_sops() {
    let key = identity("sops/key.txt");
    let g2 = identity("sops/g2.txt");
    let dir = tempfile::tempdir().unwrap();
    let docs = parse(&read("sops/secret.enc.yaml"), Format::Yaml).unwrap();
    let file = kage_core::sops::SopsFile::open(&docs, std::slice::from_ref(&key)).unwrap();

    // Same recipients: nothing to do.
    assert!(
        file.update_keys(&[vec![key.recipient()]], 0)
            .unwrap()
            .is_none()
    );

    // Re-wrap for g2 only: values, MAC and lastmodified untouched; only g2 decrypts.
    let moved = file
        .update_keys(&[vec![g2.recipient()]], 0)
        .unwrap()
        .unwrap();
    assert_eq!(moved[0].root.get("data"), docs[0].root.get("data"));
    let sops_block = |d: &kage_core::document::Document| d.root.get("sops").unwrap().clone();
    assert_eq!(
        sops_block(&moved[0]).get("mac"),
        sops_block(&docs[0]).get("mac")
    );
    let text = emit(&moved, Format::Yaml, &EmitOptions::sops()).unwrap();
    let f = write(dir.path(), "moved.yaml", text.as_bytes());
    same_data(
        &sops_decrypt(dir.path(), &f, "yaml", std::slice::from_ref(&g2)),
        &read("sops/secret.yaml"),
        Format::Yaml,
    );
    assert!(decrypt(&moved, std::slice::from_ref(&key)).is_err());

    // Rotate: a new data key, every value re-encrypted, still readable by sops.
    let rotated = file
        .rotate(Some(&[vec![key.recipient(), g2.recipient()]]))
        .unwrap();
    assert_ne!(rotated[0].root.get("data"), docs[0].root.get("data"));
    let text = emit(&rotated, Format::Yaml, &EmitOptions::sops()).unwrap();
    let f = write(dir.path(), "rotated.yaml", text.as_bytes());
    same_data(
        &sops_decrypt(dir.path(), &f, "yaml", std::slice::from_ref(&g2)),
        &read("sops/secret.yaml"),
        Format::Yaml,
    );
}
