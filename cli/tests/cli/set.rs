//! `set`, `unset`, `--merge-into`, `reencrypt`, `validate` on sealed AgeSecrets.

use crate::harness::{Dir, secret_data, secret_yaml, values};

fn sealed_repo() -> (Dir, String) {
    let dir = Dir::new();
    let r = dir.keygen("key.txt");
    dir.write(
        ".kage.yaml",
        format!("environments:\n  - name: prod\n    paths: [\"**\"]\n    recipients: [\"{r}\"]\n"),
    );
    dir.write("in.yaml", secret_yaml("db", "prod"));
    let sealed = dir.kage(&["seal", "in.yaml"]).run().ok();
    dir.write("db.yaml", &sealed);
    std::fs::remove_file(dir.path("in.yaml")).unwrap();
    (dir, r)
}

fn unsealed(dir: &Dir, file: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    let plain = dir.kage(&["unseal", file, "-i", "key.txt"]).run().ok();
    secret_data(&values(&plain)[0])
}

fn sealed_line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start().starts_with(&format!("{key}: kage:v1:")))
        .unwrap()
}

#[test]
fn merge_into_needs_no_identity() {
    let (dir, _) = sealed_repo();
    let before = dir.read("db.yaml");
    // no identity anywhere: the harness clears KAGE_IDENTITY and SOPS_AGE_KEY*
    dir.kage(&[
        "seal",
        "--merge-into",
        "db.yaml",
        "--from-literal",
        "token=abc",
        "--from-literal",
        "password=new",
    ])
    .run()
    .ok();
    let after = dir.read("db.yaml");
    assert_eq!(
        sealed_line(&before, "username"),
        sealed_line(&after, "username")
    );
    assert_ne!(
        sealed_line(&before, "password"),
        sealed_line(&after, "password")
    );
    let d = unsealed(&dir, "db.yaml");
    assert_eq!(d["token"], b"abc");
    assert_eq!(d["password"], b"new");
    assert_eq!(d["username"], b"admin");
    // a manifest naming another Secret is refused
    dir.write("other.yaml", secret_yaml("other", "prod"));
    dir.kage(&["seal", "--merge-into", "db.yaml", "other.yaml"])
        .run()
        .fails(1);
    assert_eq!(dir.read("db.yaml"), after);
}

#[test]
fn set_and_unset() {
    let (dir, _) = sealed_repo();
    dir.kage(&["set", "db.yaml", "api", "k3y"]).run().ok();
    dir.kage(&["set", "db.yaml", "piped", "-"])
        .stdin("from stdin")
        .run()
        .ok();
    dir.write("v.bin", [1u8, 2, 3]);
    dir.kage(&["set", "db.yaml", "file", "--from-file", "v.bin"])
        .run()
        .ok();
    let d = unsealed(&dir, "db.yaml");
    assert_eq!(d["api"], b"k3y");
    assert_eq!(d["piped"], b"from stdin");
    assert_eq!(d["file"], vec![1, 2, 3]);
    dir.kage(&["unset", "db.yaml", "api"]).run().ok();
    assert!(!unsealed(&dir, "db.yaml").contains_key("api"));
    dir.kage(&["unset", "db.yaml", "api"]).run().fails(1);
    dir.kage(&["set", "db.yaml", "bad key", "x"]).run().fails(2);
}

#[test]
fn reencrypt_to_new_recipients() {
    let (dir, old) = sealed_repo();
    let before = dir.read("db.yaml");
    // already current: nothing written
    let run = dir.kage(&["reencrypt", "db.yaml", "-i", "key.txt"]).run();
    run.ok();
    assert!(run.stderr.contains("already current"), "{}", run.stderr);
    assert_eq!(dir.read("db.yaml"), before);
    // a new cluster key becomes the newest recipient
    let new = dir.keygen("new.txt");
    dir.write(
        ".kage.yaml",
        format!("environments:\n  - name: prod\n    paths: [\"**\"]\n    recipients: [\"{new}\", \"{old}\"]\n"),
    );
    let v = dir.kage(&["validate", "db.yaml"]).run();
    assert_eq!(v.code, 0);
    assert!(
        v.out()
            .contains("not sealed to the environment's current key"),
        "{}",
        v.out()
    );
    dir.write(
        ".kage.yaml",
        format!(
            "environments:\n  - name: prod\n    paths: [\"**\"]\n    recipients: [\"{new}\"]\n"
        ),
    );
    let v = dir.kage(&["validate", "db.yaml"]).run();
    assert_eq!(v.code, 3, "{}", v.out());
    assert!(
        v.out().contains("unknown to environment prod"),
        "{}",
        v.out()
    );
    dir.kage(&["reencrypt", "db.yaml", "-i", "key.txt"])
        .run()
        .ok();
    let plain = dir.kage(&["unseal", "db.yaml", "-i", "new.txt"]).run().ok();
    assert_eq!(secret_data(&values(&plain)[0])["username"], b"admin");
    dir.kage(&["unseal", "db.yaml", "-i", "key.txt"])
        .run()
        .fails(3);
    assert!(
        dir.kage(&["validate", "db.yaml"])
            .run()
            .ok()
            .starts_with("ok")
    );
}

#[test]
fn validate_reports_each_file() {
    let (dir, _) = sealed_repo();
    dir.write("plain.yaml", secret_yaml("x", "y"));
    let moved = dir
        .read("db.yaml")
        .replace("namespace: prod", "namespace: dev");
    dir.write("moved.yaml", moved);
    let run = dir
        .kage(&[
            "validate",
            "db.yaml",
            "plain.yaml",
            "moved.yaml",
            "-i",
            "key.txt",
        ])
        .run();
    let out = run.out();
    assert!(out.contains("ok    db.yaml"), "{out}");
    assert!(
        out.contains("FAIL  plain.yaml: a plaintext Secret"),
        "{out}"
    );
    assert!(
        out.contains("FAIL  moved.yaml: spec.encryptedData.password: binding mismatch"),
        "{out}"
    );
    assert_eq!(run.code, 1);
    // without an identity the moved file cannot be told apart
    let run = dir.kage(&["validate", "moved.yaml"]).run();
    assert_eq!(run.code, 0, "{}", run.out());
}
