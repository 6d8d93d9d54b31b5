//! Interoperability with the real `age` and `sops`.

use base64::Engine;

use crate::harness::{Dir, secret_yaml, tool};

#[test]
fn a_sealed_value_opens_with_the_age_cli() {
    let dir = Dir::new();
    let r = dir.keygen("key.txt");
    dir.write("in.yaml", secret_yaml("db", "prod"));
    let sealed = dir.kage(&["seal", "in.yaml", "-r", &r]).run().ok();
    let line = sealed
        .lines()
        .find(|l| l.contains("username: kage:v1:"))
        .unwrap();
    let b64 = line.rsplit(':').next().unwrap();
    let ct = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    dir.write("v.age", ct);
    let age = tool("KAGE_TEST_AGE", "age");
    let run = dir.command(age, &["-d", "-i", "key.txt", "v.age"]).run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    // the binding header comes first, then the value
    assert!(
        run.stdout.ends_with(b"admin"),
        "{:?}",
        String::from_utf8_lossy(&run.stdout)
    );
    let head = String::from_utf8_lossy(&run.stdout);
    assert!(head.contains("prod") && head.contains("db"), "{head}");
}

fn sops() -> std::path::PathBuf {
    tool("KAGE_TEST_SOPS", "sops")
}

fn sops_dir() -> (Dir, String) {
    let dir = Dir::new();
    let r = dir.keygen("key.txt");
    (dir, r)
}

#[test]
fn seal_sops_decrypts_with_real_sops() {
    let (dir, r) = sops_dir();
    dir.write(
        "in.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\n  uid: abc\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{\"stringData\":{\"password\":\"s3cr3t\"}}'\nstringData:\n  username: admin\n  password: \"s3cr3t: with # chars\"\nstatus: {}\n",
    );
    let out = dir
        .kage(&["seal", "--sops", "in.yaml", "-r", &r])
        .run()
        .ok();
    assert!(out.contains("kind: Secret"), "{out}");
    assert!(
        out.contains("encrypted_regex: ^(data|stringData)$"),
        "{out}"
    );
    assert!(
        !out.contains("s3cr3t"),
        "plaintext (or last-applied) left in: {out}"
    );
    assert!(!out.contains("uid:"), "{out}");
    dir.write("s.yaml", &out);
    let run = dir
        .command(sops(), &["-d", "s.yaml"])
        .env("SOPS_AGE_KEY_FILE", dir.path("key.txt"))
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plain = run.out();
    assert!(
        plain.contains("password: 's3cr3t: with # chars'")
            || plain.contains("password: \"s3cr3t: with # chars\""),
        "{plain}"
    );
}

#[test]
fn helm_values_with_selection_flags() {
    let (dir, r) = sops_dir();
    dir.write(
        "values.yaml",
        "replicas: 3\ndb:\n  host: db.local\n  password_secret: s3cr3t\n",
    );
    let out = dir
        .kage(&[
            "seal",
            "--sops",
            "values.yaml",
            "-r",
            &r,
            "--encrypted-suffix",
            "_secret",
        ])
        .run()
        .ok();
    assert!(
        out.contains("host: db.local") && out.contains("replicas: 3"),
        "{out}"
    );
    assert!(!out.contains("s3cr3t"), "{out}");
    dir.write("v.enc.yaml", &out);
    let plain = dir
        .command(sops(), &["-d", "v.enc.yaml"])
        .env("SOPS_AGE_KEY_FILE", dir.path("key.txt"))
        .run()
        .ok();
    assert!(plain.contains("password_secret: s3cr3t"), "{plain}");
    // set and unset by dotted path keep the other ciphertexts
    let host_line = |t: &str| t.lines().find(|l| l.contains("host:")).unwrap().to_string();
    dir.kage(&[
        "set",
        "v.enc.yaml",
        "db.token_secret",
        "t0k-plain-value",
        "-i",
        "key.txt",
    ])
    .run()
    .ok();
    dir.kage(&["unset", "v.enc.yaml", "db.password_secret", "-i", "key.txt"])
        .run()
        .ok();
    let after = dir.read("v.enc.yaml");
    assert_eq!(host_line(&out), host_line(&after));
    let plain = dir
        .command(sops(), &["-d", "v.enc.yaml"])
        .env("SOPS_AGE_KEY_FILE", dir.path("key.txt"))
        .run()
        .ok();
    assert!(
        plain.contains("token_secret: t0k-plain-value") && !plain.contains("password_secret"),
        "{plain}"
    );
    assert!(!after.contains("t0k-plain-value"), "{after}");
    dir.kage(&["unset", "v.enc.yaml", "db.nope", "-i", "key.txt"])
        .run()
        .fails(1);
    // JSON with the sops defaults
    dir.write("v.json", "{\"a\": \"s3cr3t\", \"b_unencrypted\": 1}");
    let out = dir.kage(&["seal", "--sops", "v.json", "-r", &r]).run().ok();
    dir.write("v.enc.json", &out);
    let plain = dir
        .command(sops(), &["-d", "v.enc.json"])
        .env("SOPS_AGE_KEY_FILE", dir.path("key.txt"))
        .run()
        .ok();
    assert!(plain.contains("s3cr3t"), "{plain}");
}

#[test]
fn real_sops_encrypts_and_kage_unseals() {
    let (dir, r) = sops_dir();
    dir.write("in.yaml", secret_yaml("db", "prod"));
    let enc = dir
        .command(
            sops(),
            &[
                "-e",
                "--age",
                &r,
                "--encrypted-regex",
                "^(data|stringData)$",
                "in.yaml",
            ],
        )
        .run()
        .ok();
    dir.write("s.yaml", &enc);
    let plain = dir.kage(&["unseal", "s.yaml", "-i", "key.txt"]).run().ok();
    assert!(plain.contains("s3cr3t: with # chars"), "{plain}");
    // a tampered value fails the MAC
    let line = enc.lines().find(|l| l.contains("username: ENC[")).unwrap();
    let i = line.find("data:").unwrap() + 5;
    let c = &line[i..i + 1];
    let flipped = format!(
        "{}{}{}",
        &line[..i],
        if c == "A" { "B" } else { "A" },
        &line[i + 1..]
    );
    let tampered = enc.replace(line, &flipped);
    dir.write("t.yaml", tampered);
    let err = dir
        .kage(&["unseal", "t.yaml", "-i", "key.txt", "-o", "out.yaml"])
        .run()
        .fails(4);
    assert!(!dir.exists("out.yaml"), "{err}");
    // the wrong key
    dir.keygen("other.txt");
    dir.kage(&["unseal", "s.yaml", "-i", "other.txt"])
        .run()
        .fails(3);
}

#[test]
fn sops_agesecret_binding_and_break_glass_edit() {
    let (dir, r) = sops_dir();
    dir.write("in.yaml", secret_yaml("db", "prod"));
    let out = dir
        .kage(&["seal", "--sops", "--as-agesecret", "in.yaml", "-r", &r])
        .run()
        .ok();
    assert!(
        out.contains("kind: AgeSecret") && out.contains("mac_only_encrypted: true"),
        "{out}"
    );
    assert!(
        out.contains("encrypted_regex: ^(data|stringData|binding)$"),
        "{out}"
    );
    dir.write("a.yaml", &out);
    // real sops decrypts it
    let plain = dir
        .command(sops(), &["-d", "a.yaml"])
        .env("SOPS_AGE_KEY_FILE", dir.path("key.txt"))
        .run()
        .ok();
    assert!(
        plain.contains("binding: kage-binding:v1;scope=strict;namespace=prod;name=db"),
        "{plain}"
    );
    // kage unseal gives a Secret
    let s = dir.kage(&["unseal", "a.yaml", "-i", "key.txt"]).run().ok();
    assert!(s.contains("kind: Secret") && s.contains("name: db"), "{s}");
    // moving it (metadata is not under the MAC with mac_only_encrypted) is refused
    dir.write("m.yaml", out.replace("namespace: prod", "namespace: dev"));
    let err = dir
        .kage(&["unseal", "m.yaml", "-i", "key.txt"])
        .run()
        .fails(5);
    assert!(err.contains("binding mismatch"), "{err}");
    // the real sops can set a value; kage still reads it
    let run = dir
        .command(
            sops(),
            &[
                "set",
                "a.yaml",
                "[\"spec\"][\"stringData\"][\"token\"]",
                "\"t0k\"",
            ],
        )
        .env("SOPS_AGE_KEY_FILE", dir.path("key.txt"))
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let s = dir
        .kage(&["unseal", "a.yaml", "-i", "key.txt", "--string-data"])
        .run()
        .ok();
    assert!(s.contains("token: t0k"), "{s}");
}

#[test]
fn sops_set_edit_reencrypt_keep_ciphertexts() {
    let (dir, r) = sops_dir();
    dir.write(
        ".kage.yaml",
        format!("environments:\n  - name: prod\n    paths: [\"**\"]\n    recipients: [\"{r}\"]\n"),
    );
    dir.write("in.yaml", secret_yaml("db", "prod"));
    let out = dir.kage(&["seal", "--sops", "in.yaml"]).run().ok();
    dir.write("s.yaml", &out);
    let user_line = |t: &str| {
        t.lines()
            .find(|l| l.contains("username:"))
            .unwrap()
            .to_string()
    };
    dir.kage(&["set", "s.yaml", "token", "t0k", "-i", "key.txt"])
        .run()
        .ok();
    let after = dir.read("s.yaml");
    assert_eq!(user_line(&out), user_line(&after));
    dir.kage(&["unset", "s.yaml", "password", "-i", "key.txt"])
        .run()
        .ok();
    let plain = dir
        .command(sops(), &["-d", "s.yaml"])
        .env("SOPS_AGE_KEY_FILE", dir.path("key.txt"))
        .run()
        .ok();
    assert!(
        plain.contains("token: t0k") && !plain.contains("password"),
        "{plain}"
    );
    // edit
    dir.kage(&["edit", "s.yaml", "-i", "key.txt"])
        .env("EDITOR", "sed -i s/t0k/n3w/")
        .run()
        .ok();
    let edited = dir.read("s.yaml");
    assert_eq!(user_line(&out), user_line(&edited));
    let plain = dir.kage(&["unseal", "s.yaml", "-i", "key.txt"]).run().ok();
    assert!(plain.contains("token: n3w"), "{plain}");
    // reencrypt: current → unchanged; new key → updatekeys
    let before = dir.read("s.yaml");
    dir.kage(&["reencrypt", "s.yaml", "-i", "key.txt"])
        .run()
        .ok();
    assert_eq!(dir.read("s.yaml"), before);
    let new = dir.keygen("new.txt");
    dir.write(
        ".kage.yaml",
        format!(
            "environments:\n  - name: prod\n    paths: [\"**\"]\n    recipients: [\"{new}\"]\n"
        ),
    );
    assert_eq!(dir.kage(&["validate", "s.yaml"]).run().code, 3);
    dir.kage(&["reencrypt", "s.yaml", "-i", "key.txt"])
        .run()
        .ok();
    let plain = dir
        .command(sops(), &["-d", "s.yaml"])
        .env("SOPS_AGE_KEY_FILE", dir.path("new.txt"))
        .run()
        .ok();
    assert!(plain.contains("token: n3w"), "{plain}");
    dir.kage(&["reencrypt", "s.yaml", "-i", "new.txt", "--rotate-data-key"])
        .run()
        .ok();
    assert_ne!(user_line(&dir.read("s.yaml")), user_line(&out));
    assert!(
        dir.kage(&["validate", "s.yaml", "-i", "new.txt"])
            .run()
            .ok()
            .starts_with("ok")
    );
}

#[test]
fn sops_config_matches_kage_config_for_real_sops() {
    let dir = Dir::new();
    let prod = dir.keygen("prod.key");
    let dev = dir.keygen("dev.key");
    dir.write(
        ".kage.yaml",
        format!(
            "environments:\n  - name: prod\n    paths: [\"clusters/prod/**\"]\n    recipients: [\"{prod}\"]\n\
             \x20 - name: dev\n    paths: [\"clusters/dev/*.yaml\"]\n    recipients: [\"{dev}\"]\n"
        ),
    );
    dir.kage(&["sops-config"]).run().ok();
    dir.write("clusters/prod/a/db.yaml", secret_yaml("db", "prod"));
    dir.write("clusters/dev/db.yaml", secret_yaml("db", "dev"));
    for (file, key, other) in [
        ("clusters/prod/a/db.yaml", "prod.key", "dev.key"),
        ("clusters/dev/db.yaml", "dev.key", "prod.key"),
    ] {
        let enc = dir.command(sops(), &["-e", file]).run().ok();
        dir.write("e.yaml", &enc);
        assert!(enc.contains("kind: Secret"), "{enc}");
        dir.kage(&["unseal", "e.yaml", "-i", key]).run().ok();
        dir.kage(&["unseal", "e.yaml", "-i", other]).run().fails(3);
    }
}

#[test]
fn reencrypt_sorts_a_hand_edited_sops_agesecret() {
    let (dir, r) = sops_dir();
    dir.write("in.yaml", secret_yaml("db", "prod"));
    let out = dir
        .kage(&["seal", "--sops", "--as-agesecret", "in.yaml", "-r", &r])
        .run()
        .ok();
    dir.write("a.yaml", &out);
    // sops set appends a new key at the end of spec.stringData: "aaa" now comes after "username"
    let run = dir
        .command(
            sops(),
            &[
                "set",
                "a.yaml",
                "[\"spec\"][\"stringData\"][\"aaa\"]",
                "\"x\"",
            ],
        )
        .env("SOPS_AGE_KEY_FILE", dir.path("key.txt"))
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let keys = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| {
                l.starts_with("        ") && !l.starts_with("         ") && l.contains(": ENC[")
            })
            .map(|l| l.trim().split(':').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(keys(&dir.read("a.yaml")), ["password", "username", "aaa"]);
    dir.kage(&["reencrypt", "a.yaml", "-i", "key.txt", "-r", &r])
        .run()
        .ok();
    assert_eq!(keys(&dir.read("a.yaml")), ["aaa", "password", "username"]);
    let s = dir
        .kage(&["unseal", "a.yaml", "-i", "key.txt", "--string-data"])
        .run()
        .ok();
    assert!(s.contains("aaa: x"), "{s}");
}

#[test]
fn json_secrets_both_ways_and_clear_values_are_caught() {
    let (dir, r) = sops_dir();
    dir.write(
        "s.json",
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db","namespace":"prod"},"stringData":{"password":"s3cr3t"}}"#,
    );
    // real sops → kage
    let enc = dir
        .command(
            sops(),
            &[
                "-e",
                "--age",
                &r,
                "--encrypted-regex",
                "^(data|stringData)$",
                "s.json",
            ],
        )
        .run()
        .ok();
    dir.write("e.json", &enc);
    let plain = dir.kage(&["unseal", "e.json", "-i", "key.txt"]).run().ok();
    assert!(
        plain.trim_start().starts_with('{') && plain.contains("s3cr3t"),
        "{plain}"
    );
    // kage → real sops
    let out = dir.kage(&["seal", "--sops", "s.json", "-r", &r]).run().ok();
    dir.write("k.json", &out);
    let plain = dir
        .command(sops(), &["-d", "k.json"])
        .env("SOPS_AGE_KEY_FILE", dir.path("key.txt"))
        .run()
        .ok();
    assert!(plain.contains("s3cr3t"), "{plain}");
    // a value put back in clear is reported without a key, and breaks the MAC with one
    let yaml = dir
        .kage(&["seal", "--sops", "-r", &r])
        .stdin(secret_yaml("db", "prod"))
        .run()
        .ok();
    let line = yaml.lines().find(|l| l.contains("username: ENC[")).unwrap();
    dir.write("leak.yaml", yaml.replace(line, "    username: admin"));
    let v = dir.kage(&["validate", "leak.yaml"]).run();
    assert_eq!(v.code, 1, "{}", v.out());
    assert!(
        v.out().contains("stringData.username is in clear"),
        "{}",
        v.out()
    );
    let v = dir.kage(&["validate", "leak.yaml", "-i", "key.txt"]).run();
    assert_ne!(v.code, 0, "{}", v.out());
}
