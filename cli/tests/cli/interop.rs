//! Interoperability with the real `age` and `sops`.

use base64::Engine;

use crate::harness::{Dir, secret_yaml, tool};

#[test]
fn a_sealed_value_opens_with_the_age_cli() {
    let dir = Dir::new();
    let r = dir.keygen("key.txt");
    dir.write("in.yaml", secret_yaml("db", "prod"));
    let sealed = dir.kage(&["seal", "in.yaml", "-r", &r]).run().ok();
    let line = sealed.lines().find(|l| l.contains("username: kage:v1:")).unwrap();
    let b64 = line.rsplit(':').next().unwrap();
    let ct = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    dir.write("v.age", ct);
    let age = tool("KAGE_TEST_AGE", "age");
    let run = dir.command(age, &["-d", "-i", "key.txt", "v.age"]).run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    // the binding header comes first, then the value
    assert!(run.stdout.ends_with(b"admin"), "{:?}", String::from_utf8_lossy(&run.stdout));
    let head = String::from_utf8_lossy(&run.stdout);
    assert!(head.contains("prod") && head.contains("db"), "{head}");
}
