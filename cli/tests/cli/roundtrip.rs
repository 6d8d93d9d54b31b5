//! seal → unseal gives back the input.

use crate::harness::{Dir, mode, secret_data, secret_yaml, values};

fn setup() -> (Dir, String) {
    let dir = Dir::new();
    let r = dir.keygen("key.txt");
    (dir, r)
}

#[track_caller]
fn roundtrip(input: &str) {
    let (dir, r) = setup();
    dir.write("in.yaml", input);
    let sealed = dir.kage(&["seal", "in.yaml", "-r", &r]).run().ok();
    assert!(!sealed.contains("s3cr3t"), "plaintext in sealed output");
    dir.write("sealed.yaml", &sealed);
    let plain = dir
        .kage(&["unseal", "sealed.yaml", "-i", "key.txt"])
        .run()
        .ok();
    let want: Vec<_> = values(input)
        .iter()
        .flat_map(|v| match v.get("items") {
            Some(items) => items.as_array().unwrap().clone(),
            None => vec![v.clone()],
        })
        .collect();
    let got = values(&plain);
    assert_eq!(got.len(), want.len(), "{plain}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(secret_data(g), secret_data(w), "{plain}");
        assert_eq!(g["metadata"]["name"], w["metadata"]["name"]);
        assert_eq!(g["metadata"]["namespace"], w["metadata"]["namespace"]);
        let wt = w.get("type").cloned().unwrap_or("Opaque".into());
        assert_eq!(g["type"], wt);
    }
}

#[test]
fn string_data() {
    roundtrip(&secret_yaml("db", "prod"));
}

#[test]
fn data_binary_and_unicode() {
    roundtrip(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: prod}\n\
         data:\n  bin: AAECA/7/gICA\n  empty: \"\"\nstringData:\n  uni: \"héllo 世界 🔑\"\n  multi: |\n    a\n    b\n  yes: no\n",
    );
}

#[test]
fn scalars_keep_their_text() {
    let (dir, r) = setup();
    dir.write(
        "in.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: prod}\nstringData:\n  num: 0123\n  ver: 1.10\n  flag: yes\n  t: 2001-12-14\n",
    );
    let sealed = dir.kage(&["seal", "in.yaml", "-r", &r]).run().ok();
    dir.write("s.yaml", &sealed);
    let plain = dir
        .kage(&["unseal", "s.yaml", "-i", "key.txt", "--string-data"])
        .run()
        .ok();
    assert!(
        plain.ends_with(
            "stringData:\n  flag: \"yes\"\n  num: \"0123\"\n  t: \"2001-12-14\"\n  ver: \"1.10\"\n"
        ),
        "{plain}"
    );
}

#[test]
fn multi_document_and_list() {
    let a = secret_yaml("a", "prod");
    let b = secret_yaml("b", "dev");
    roundtrip(&format!("{a}---\n{b}"));
    roundtrip(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: x, namespace: n}\n  stringData: {k: v}\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: y, namespace: n}\n  data: {k: AA==}\n",
    );
}

#[test]
fn json_in_json_out() {
    let (dir, r) = setup();
    dir.write(
        "in.json",
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db","namespace":"prod"},"data":{"a":"AQID"}}"#,
    );
    let sealed = dir.kage(&["seal", "in.json", "-r", &r]).run().ok();
    assert!(sealed.starts_with('{'), "{sealed}");
    dir.write("s.json", &sealed);
    let plain = dir.kage(&["unseal", "s.json", "-i", "key.txt"]).run().ok();
    assert!(plain.starts_with('{'), "{plain}");
    assert_eq!(secret_data(&values(&plain)[0])["a"], vec![1, 2, 3]);
}

#[test]
fn agesecret_layout_is_fixed() {
    let (dir, r) = setup();
    dir.write(
        "in.yaml",
        "kind: Secret\napiVersion: v1\nstringData: {b: \"2\", a: \"1\"}\ntype: kubernetes.io/basic-auth\n\
         metadata:\n  labels: {app: x}\n  namespace: prod\n  name: db\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: \"{}\"\n  uid: u\n  resourceVersion: \"5\"\n  managedFields: []\n  ownerReferences: []\nstatus: {}\n",
    );
    dir.write(
        "in.yaml",
        dir.read("in.yaml")
            .replace("{b: \"2\", a: \"1\"}", "{password: \"2\", username: \"1\"}"),
    );
    let out = dir.kage(&["seal", "in.yaml", "-r", &r]).run().ok();
    let shape: Vec<String> = out
        .lines()
        .map(|l| match l.split_once(": kage:v1:") {
            Some((k, _)) => format!("{k}: <sealed>"),
            None => l.to_string(),
        })
        .collect();
    assert_eq!(
        shape.join("\n"),
        "apiVersion: kage.dev/v1alpha1\nkind: AgeSecret\nmetadata:\n  name: db\n  namespace: prod\nspec:\n  scope: strict\n  encryptedData:\n    password: <sealed>\n    username: <sealed>\n  template:\n    type: kubernetes.io/basic-auth\n    metadata:\n      labels:\n        app: x"
    );
}

#[test]
fn literals_and_files_build_a_secret() {
    let (dir, r) = setup();
    dir.write("cert.bin", [0u8, 159, 146, 150]);
    let sealed = dir
        .kage(&[
            "seal",
            "-r",
            &r,
            "--name",
            "db",
            "-n",
            "prod",
            "--from-literal",
            "user=admin",
            "--from-literal",
            "pw=a=b",
            "--from-file",
            "cert.bin",
            "--from-file",
            "other=cert.bin",
        ])
        .run()
        .ok();
    dir.write("s.yaml", &sealed);
    let plain = dir.kage(&["unseal", "s.yaml", "-i", "key.txt"]).run().ok();
    let d = secret_data(&values(&plain)[0]);
    assert_eq!(d["user"], b"admin");
    assert_eq!(d["pw"], b"a=b");
    assert_eq!(d["cert.bin"], vec![0u8, 159, 146, 150]);
    assert_eq!(d["other"], vec![0u8, 159, 146, 150]);
}

#[test]
fn kubectl_create_secret_pipes_into_seal() {
    let (dir, r) = setup();
    let kubectl = crate::harness::tool("KAGE_TEST_KUBECTL", "kubectl");
    let manifest = dir
        .command(
            kubectl,
            &[
                "create",
                "secret",
                "generic",
                "db",
                "-n",
                "prod",
                "--from-literal=password=s3cr3t",
                "--dry-run=client",
                "-o",
                "yaml",
            ],
        )
        .run()
        .ok();
    let sealed = dir.kage(&["seal", "-r", &r]).stdin(&manifest).run().ok();
    assert!(sealed.contains("kind: AgeSecret") && !sealed.contains("s3cr3t"));
    dir.write("s.yaml", &sealed);
    let plain = dir.kage(&["unseal", "s.yaml", "-i", "key.txt"]).run().ok();
    assert_eq!(secret_data(&values(&plain)[0])["password"], b"s3cr3t");
}

#[test]
fn output_files_dirs_and_modes() {
    let (dir, r) = setup();
    dir.write("a.yaml", secret_yaml("a", "prod"));
    dir.write("b.yaml", secret_yaml("b", "prod"));
    std::fs::create_dir(dir.path("out")).unwrap();
    dir.kage(&["seal", "a.yaml", "b.yaml", "-r", &r, "-o", "out"])
        .run()
        .ok();
    assert!(dir.read("out/a.yaml").contains("name: a"));
    assert!(dir.read("out/b.yaml").contains("name: b"));
    std::fs::create_dir(dir.path("plain")).unwrap();
    dir.kage(&[
        "unseal",
        "out/a.yaml",
        "out/b.yaml",
        "-i",
        "key.txt",
        "-o",
        "plain",
    ])
    .run()
    .ok();
    assert_eq!(mode(&dir.path("plain/a.yaml")), 0o600);
    assert_eq!(mode(&dir.path("plain/b.yaml")), 0o600);
    // --in-place replaces the inputs
    dir.kage(&["seal", "a.yaml", "-r", &r, "--in-place"])
        .run()
        .ok();
    assert!(dir.read("a.yaml").contains("kind: AgeSecret"));
    // unseal never writes plaintext over the encrypted file
    let err = dir
        .kage(&["unseal", "a.yaml", "-i", "key.txt", "-o", "a.yaml"])
        .run()
        .fails(2);
    assert!(err.contains("refusing"), "{err}");
    assert!(dir.read("a.yaml").contains("kind: AgeSecret"));
}

#[test]
fn scopes() {
    let (dir, r) = setup();
    dir.write(
        "ns.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {namespace: prod}\nstringData: {k: v}\n",
    );
    dir.kage(&["seal", "ns.yaml", "-r", &r]).run().fails(2);
    let sealed = dir
        .kage(&["seal", "ns.yaml", "-r", &r, "--scope", "namespace"])
        .run()
        .ok();
    // a namespace-scoped value opens under any name in its namespace
    let renamed = sealed.replace("namespace: prod", "name: other\n  namespace: prod");
    dir.write("s.yaml", &renamed);
    dir.kage(&["unseal", "s.yaml", "-i", "key.txt"]).run().ok();
    // but not in another namespace
    dir.write(
        "moved.yaml",
        sealed.replace("namespace: prod", "namespace: dev"),
    );
    dir.kage(&["unseal", "moved.yaml", "-i", "key.txt"])
        .run()
        .fails(5);
    // cluster scope needs neither
    dir.write(
        "none.yaml",
        "apiVersion: v1\nkind: Secret\nstringData: {k: v}\n",
    );
    let c = dir
        .kage(&["seal", "none.yaml", "-r", &r, "--scope", "cluster"])
        .run()
        .ok();
    dir.write(
        "c.yaml",
        c.replace("metadata: {}", "metadata:\n  name: x\n  namespace: y"),
    );
    dir.kage(&["unseal", "c.yaml", "-i", "key.txt"]).run().ok();
}

#[test]
fn identities_from_environment() {
    let (dir, r) = setup();
    dir.write("in.yaml", secret_yaml("db", "prod"));
    let sealed = dir.kage(&["seal", "in.yaml", "-r", &r]).run().ok();
    dir.write("s.yaml", &sealed);
    let key = dir.read("key.txt");
    let key_path = dir.path("key.txt");
    dir.kage(&["unseal", "s.yaml"])
        .env("KAGE_IDENTITY", &key_path)
        .run()
        .ok();
    dir.kage(&["unseal", "s.yaml"])
        .env("SOPS_AGE_KEY_FILE", &key_path)
        .run()
        .ok();
    dir.kage(&["unseal", "s.yaml"])
        .env("SOPS_AGE_KEY", key.trim())
        .run()
        .ok();
    dir.kage(&["unseal", "s.yaml"]).run().fails(3);
}

#[test]
fn broken_pipe_exits_quietly() {
    let (dir, r) = setup();
    let docs: Vec<String> = (0..300)
        .map(|i| secret_yaml(&format!("s{i}"), "prod"))
        .collect();
    dir.write("many.yaml", docs.join("---\n"));
    let sealed = dir.kage(&["seal", "many.yaml", "-r", &r]).run().ok();
    dir.write("s.yaml", &sealed);
    let mut child = std::process::Command::new(crate::harness::kage_bin())
        .args(["unseal", "s.yaml", "-i", "key.txt"])
        .current_dir(dir.path(""))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn many_files_keep_their_order_and_names() {
    let (dir, r) = setup();
    let mut names = Vec::new();
    for i in 0..40 {
        let name = format!("in/s{i:02}.yaml");
        dir.write(&name, secret_yaml(&format!("s{i}"), "prod"));
        names.push(name);
    }
    std::fs::create_dir(dir.path("sealed")).unwrap();
    let mut args = vec!["seal", "-r", &r, "-o", "sealed"];
    args.extend(names.iter().map(String::as_str));
    dir.kage(&args).run().ok();
    // to stdout: one stream, in argument order
    let mut args = vec!["seal", "-r", &r];
    args.extend(names.iter().map(String::as_str));
    let all = dir.kage(&args).run().ok();
    let order: Vec<String> = values(&all)
        .iter()
        .map(|v| v["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(order, (0..40).map(|i| format!("s{i}")).collect::<Vec<_>>());
    let sealed: Vec<String> = (0..40).map(|i| format!("sealed/s{i:02}.yaml")).collect();
    std::fs::create_dir(dir.path("plain")).unwrap();
    let mut args = vec!["unseal", "-i", "key.txt", "-o", "plain"];
    args.extend(sealed.iter().map(String::as_str));
    dir.kage(&args).run().ok();
    for i in 0..40 {
        let p = values(&dir.read(&format!("plain/s{i:02}.yaml")));
        assert_eq!(p[0]["metadata"]["name"], format!("s{i}"));
        assert_eq!(secret_data(&p[0])["username"], b"admin");
    }
    let mut args = vec!["validate", "-i", "key.txt"];
    args.extend(sealed.iter().map(String::as_str));
    let report = dir.kage(&args).run().ok();
    let lines: Vec<&str> = report.lines().filter(|l| !l.starts_with("warn")).collect();
    assert_eq!(lines.len(), 40);
    assert!(lines[0].ends_with("sealed/s00.yaml") && lines[39].ends_with("sealed/s39.yaml"));
    // one bad file among many: nothing is written
    dir.write("in/s05.yaml", "kind: ConfigMap\n");
    std::fs::create_dir(dir.path("none")).unwrap();
    let mut args = vec!["seal", "-r", &r, "-o", "none"];
    args.extend(names.iter().map(String::as_str));
    dir.kage(&args).run().fails(1);
    assert_eq!(std::fs::read_dir(dir.path("none")).unwrap().count(), 0);
}
