//! Every bad input exits non-zero with one message, no panic, no output file, no secret echoed.

use crate::harness::{Dir, secret_yaml};

fn setup() -> (Dir, String) {
    let dir = Dir::new();
    let r = dir.keygen("key.txt");
    dir.write("in.yaml", secret_yaml("db", "prod"));
    let sealed = dir.kage(&["seal", "in.yaml", "-r", &r]).run().ok();
    dir.write("db.yaml", &sealed);
    (dir, r)
}

/// Runs `kage args… -o out.yaml`, expects `code`, and checks that out.yaml was not created.
#[track_caller]
fn refused(dir: &Dir, args: &[&str], code: i32) -> String {
    let mut all = args.to_vec();
    all.extend(["-o", "out.yaml"]);
    let err = dir.kage(&all).run().fails(code);
    assert!(!dir.exists("out.yaml"), "an output file was written");
    assert!(!err.contains("s3cr3t"), "secret in error: {err}");
    err
}

#[test]
fn wrong_key() {
    let (dir, _) = setup();
    dir.keygen("other.txt");
    let err = refused(&dir, &["unseal", "db.yaml", "-i", "other.txt"], 3);
    assert!(err.contains("no identity for key id"), "{err}");
}

#[test]
fn tampered_value() {
    let (dir, _) = setup();
    let text = dir.read("db.yaml");
    let line = text
        .lines()
        .find(|l| l.contains("password: kage:v1:"))
        .unwrap();
    // flip one base64 character near the end of the ciphertext
    let mut chars: Vec<char> = line.chars().collect();
    let i = chars.len() - 10;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    dir.write("t.yaml", text.replace(line, &tampered));
    refused(&dir, &["unseal", "t.yaml", "-i", "key.txt"], 4);
    // truncated
    let cut = &line[..line.len() - 40];
    dir.write("c.yaml", text.replace(line, cut));
    refused(&dir, &["unseal", "c.yaml", "-i", "key.txt"], 4);
}

#[test]
fn moved_document() {
    let (dir, _) = setup();
    for (from, to) in [
        ("namespace: prod", "namespace: dev"),
        ("name: db", "name: other"),
    ] {
        dir.write("m.yaml", dir.read("db.yaml").replace(from, to));
        let err = refused(&dir, &["unseal", "m.yaml", "-i", "key.txt"], 5);
        assert!(err.contains("binding mismatch"), "{err}");
    }
    // widening the clear scope does not widen the sealed one
    dir.write(
        "w.yaml",
        dir.read("db.yaml")
            .replace("scope: strict", "scope: cluster"),
    );
    refused(&dir, &["unseal", "w.yaml", "-i", "key.txt"], 5);
    // a value copied under another key
    let text = dir.read("db.yaml");
    let pw = text
        .lines()
        .find(|l| l.contains("password: kage:v1:"))
        .unwrap();
    dir.write(
        "k.yaml",
        text.replace(pw, &pw.replace("password:", "stolen:")),
    );
    refused(&dir, &["unseal", "k.yaml", "-i", "key.txt"], 5);
}

#[test]
fn malformed_and_incomplete_inputs() {
    let (dir, r) = setup();
    for (name, text, code) in [
        ("bad.yaml", "stringData:\n  password: \"s3cr3t\n  x: [", 1),
        ("bad.json", "{\"stringData\": {\"password\": \"s3cr3t\"", 1),
        ("nokind.yaml", "stringData: {password: s3cr3t}\n", 1),
        (
            "cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\ndata: {a: s3cr3t}\n",
            1,
        ),
        (
            "noname.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {namespace: x}\nstringData: {password: s3cr3t}\n",
            2,
        ),
        (
            "b64.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: b}\ndata: {password: s3cr3t!}\n",
            1,
        ),
        (
            "key.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: b}\nstringData: {\"pass word\": s3cr3t}\n",
            2, // a Kubernetes rule
        ),
        (
            "tls.yaml",
            "apiVersion: v1\nkind: Secret\ntype: kubernetes.io/tls\nmetadata: {name: a, namespace: b}\nstringData: {tls.crt: s3cr3t, tls.key: s3cr3t}\n",
            1,
        ),
        (
            "dcj.yaml",
            "apiVersion: v1\nkind: Secret\ntype: kubernetes.io/dockerconfigjson\nmetadata: {name: a, namespace: b}\nstringData: {.dockerconfigjson: \"{s3cr3t\"}\n",
            1,
        ),
        (
            "ssh.yaml",
            "apiVersion: v1\nkind: Secret\ntype: kubernetes.io/ssh-auth\nmetadata: {name: a, namespace: b}\nstringData: {password: s3cr3t}\n",
            2, // a Kubernetes rule
        ),
        (
            "basic.yaml",
            "apiVersion: v1\nkind: Secret\ntype: kubernetes.io/basic-auth\nmetadata: {name: a, namespace: b}\nstringData: {token: s3cr3t}\n",
            2, // a Kubernetes rule
        ),
        ("empty.yaml", "", 1),
    ] {
        dir.write(name, text);
        refused(&dir, &["seal", name, "-r", &r], code);
    }
    // a missing file
    refused(&dir, &["seal", "nope.yaml", "-r", &r], 1);
    // an unsealed Secret given to unseal
    refused(&dir, &["unseal", "in.yaml", "-i", "key.txt"], 1);
    // sealing twice
    let err = refused(&dir, &["seal", "db.yaml", "-r", &r], 6);
    assert!(err.contains("already sealed"), "{err}");
    // conflicting overrides
    refused(
        &dir,
        &["seal", "in.yaml", "-r", &r, "--namespace", "dev"],
        2,
    );
    // plaintext where ciphertext belongs
    let text = dir.read("db.yaml");
    let pw = text
        .lines()
        .find(|l| l.contains("password: kage:v1:"))
        .unwrap();
    dir.write("p.yaml", text.replace(pw, "    password: s3cr3t"));
    refused(&dir, &["unseal", "p.yaml", "-i", "key.txt"], 1);
}

#[test]
fn huge_and_binary_inputs() {
    let (dir, r) = setup();
    // 10 MiB value: over the API server's 1 MiB Secret limit
    let big = "A".repeat(10 << 20);
    dir.write(
        "big.yaml",
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: a, namespace: b}}\ndata:\n  k: {big}\n"
        ),
    );
    // Over kage's input limit (8 MiB) it is refused before parsing; under it, by the API
    // server's rule.
    let err = refused(&dir, &["seal", "big.yaml", "-r", &r], 1);
    assert!(
        err.contains("exceeds the input size limit (8 MiB)"),
        "{err}"
    );
    let big = "A".repeat(2 << 20);
    dir.write(
        "big.yaml",
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: a, namespace: b}}\ndata:\n  k: {big}\n"
        ),
    );
    let err = refused(&dir, &["seal", "big.yaml", "-r", &r], 2);
    assert!(err.contains("limit is 1048576"), "{err}");
    dir.write("bigval", vec![b'x'; 10 << 20]);
    refused(
        &dir,
        &[
            "seal",
            "-r",
            &r,
            "--name",
            "a",
            "-n",
            "b",
            "--from-file",
            "bigval",
        ],
        2,
    );
    // binary garbage instead of a manifest
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    dir.write("bin.yaml", &garbage);
    refused(&dir, &["seal", "bin.yaml", "-r", &r], 1);
    dir.write("bin2.yaml", &garbage);
    refused(&dir, &["unseal", "bin2.yaml", "-i", "key.txt"], 1);
    // exactly 1 MiB of data (key + value) is accepted
    let v = "A".repeat(((1 << 20) - 1) / 3 * 4);
    dir.write(
        "max.yaml",
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: a, namespace: b}}\ndata:\n  k: {v}\n"
        ),
    );
    dir.kage(&["seal", "max.yaml", "-r", &r]).run().ok();
}

#[test]
fn usage_errors_exit_2() {
    let (dir, r) = setup();
    dir.kage(&["seal", "--bogus"]).run();
    assert_eq!(dir.kage(&["seal", "--bogus"]).run().code, 2);
    assert_eq!(
        dir.kage(&["seal", "--scope", "wide", "-r", &r]).run().code,
        2
    );
    assert_eq!(
        dir.kage(&["seal", "--as-agesecret", "-r", &r]).run().code,
        2
    );
    let err = dir
        .kage(&["seal", "in.yaml", "--from-literal", "a=b", "-r", &r])
        .run()
        .fails(2);
    assert!(err.contains("cannot be combined"), "{err}");
    dir.kage(&["seal", "-r", "age1nope"])
        .stdin(secret_yaml("a", "b"))
        .run()
        .fails(2);
}

#[test]
fn agesecrets_with_missing_fields() {
    let (dir, _) = setup();
    let text = dir.read("db.yaml");
    for (name, broken, want) in [
        (
            "noscope.yaml",
            text.replace("  scope: strict\n", ""),
            "spec.scope is missing",
        ),
        (
            "noapi.yaml",
            text.replace("apiVersion: kage.dev/v1alpha1\n", ""),
            "apiVersion is missing",
        ),
        (
            "v2.yaml",
            text.replace("kage.dev/v1alpha1", "kage.dev/v2"),
            "not supported",
        ),
        (
            "nospec.yaml",
            text[..text.find("spec:").unwrap()].to_string(),
            "spec is missing",
        ),
        (
            "nons.yaml",
            text.replace("  namespace: prod\n", ""),
            "strict scope binds",
        ),
        (
            "badscope.yaml",
            text.replace("scope: strict", "scope: wide"),
            "not strict, namespace or cluster",
        ),
    ] {
        dir.write(name, broken);
        let err = refused(
            &dir,
            &["unseal", name, "-i", "key.txt"],
            if name == "nons.yaml" { 2 } else { 1 },
        );
        assert!(err.contains(want), "{name}: {err}");
    }
}

#[test]
fn a_sops_file_without_its_mac_exits_4() {
    let (dir, r) = setup();
    let json = "{\"apiVersion\": \"v1\", \"kind\": \"Secret\", \"metadata\": {\"name\": \"db\", \"namespace\": \"prod\"}, \"stringData\": {\"password\": \"s3cr3t\"}}";
    dir.write("in.json", json);
    for (input, file) in [("in.yaml", "nomac.yaml"), ("in.json", "nomac.json")] {
        let enc = dir.kage(&["seal", "--sops", input, "-r", &r]).run().ok();
        let stripped: String = enc
            .lines()
            .filter(|l| {
                !l.trim_start().starts_with("mac:") && !l.trim_start().starts_with("\"mac\":")
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(stripped.len(), enc.len(), "{enc}");
        dir.write(file, &stripped);
        let err = refused(&dir, &["unseal", file, "-i", "key.txt"], 4);
        assert!(err.contains("mac is missing"), "{err}");
        let err = dir
            .kage(&["set", file, "password", "x", "-i", "key.txt"])
            .run()
            .fails(4);
        assert!(err.contains("mac is missing"), "{err}");
        assert_eq!(dir.read(file), stripped, "set wrote the file");
        let run = dir.kage(&["validate", file, "-i", "key.txt"]).run();
        assert_eq!(run.code, 4, "{}{}", run.out(), run.stderr);
        assert!(run.out().contains("mac is missing"), "{}", run.out());
    }
}

#[test]
fn json_duplicate_keys_are_refused_like_yaml_ones() {
    let (dir, r) = setup();
    let dup = "{\"apiVersion\": \"v1\", \"kind\": \"Secret\", \"metadata\": {\"name\": \"db\", \"namespace\": \"prod\"},\n \"stringData\": {\"password\": \"s3cr3t\",\n \"password\": \"other\"}}";
    dir.write("dup.json", dup);
    for args in [
        &["seal", "dup.json", "-r", &r][..],
        &["seal", "--sops", "dup.json", "-r", &r],
    ] {
        let err = refused(&dir, args, 1);
        assert!(
            err.contains("dup.json: invalid JSON at line 3: duplicate key \"password\""),
            "{args:?}: {err}"
        );
        assert!(!err.contains("other"), "{err}");
    }
    // The same in YAML, for comparison: refused too.
    dir.write(
        "dup.yaml",
        "kind: Secret\nmetadata: {name: db, namespace: prod}\nstringData:\n  password: a\n  password: b\n",
    );
    refused(&dir, &["seal", "dup.yaml", "-r", &r], 1);
    // A SOPS JSON file with a key given twice (its MAC is computed over one of them).
    let json = "{\"apiVersion\": \"v1\", \"kind\": \"Secret\", \"metadata\": {\"name\": \"db\", \"namespace\": \"prod\"}, \"stringData\": {\"password\": \"s3cr3t\"}}";
    dir.write("in.json", json);
    let enc = dir
        .kage(&["seal", "--sops", "in.json", "-r", &r])
        .run()
        .ok();
    let line = enc
        .lines()
        .find(|l| l.trim_start().starts_with("\"password\": \"ENC["))
        .unwrap();
    let doubled = enc.replace(line, &format!("{line},\n{line}"));
    assert_ne!(doubled, enc);
    dir.write("dup.enc.json", &doubled);
    let err = refused(&dir, &["unseal", "dup.enc.json", "-i", "key.txt"], 1);
    assert!(err.contains("duplicate key \"password\""), "{err}");
}

#[test]
fn validate_checks_the_kubernetes_rules_offline() {
    let (dir, _) = setup();
    let text = dir.read("db.yaml");
    let text_of =
        |r: &crate::harness::Run| format!("{}{}", String::from_utf8_lossy(&r.stdout), r.stderr);
    let text = &text;
    // A key the API server refuses (the controller would report InvalidSpec).
    dir.write(
        "dotdot.yaml",
        text.replace("    password: kage:v1:", "    ..x: kage:v1:"),
    );
    let out = dir.kage(&["validate", "dotdot.yaml"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        text_of(&out).contains("data[..x]: Invalid value: \"..x\": must not start with '..'"),
        "{out:?}"
    );
    // A TLS Secret without its certificate.
    dir.write(
        "tls.yaml",
        text.replace("    type: Opaque", "    type: kubernetes.io/tls"),
    );
    let out = dir.kage(&["validate", "tls.yaml"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        text_of(&out).contains("data[tls.crt]: Required value"),
        "{out:?}"
    );
    // The same with the identity (the values are opened and checked too).
    let out = dir.kage(&["validate", "tls.yaml", "-i", "key.txt"]).run();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(!text_of(&out).contains("s3cr3t") && !out.stderr.contains("s3cr3t"));
    // The untouched file passes.
    assert_eq!(
        dir.kage(&["validate", "db.yaml", "-i", "key.txt"])
            .run()
            .code,
        0
    );
}
