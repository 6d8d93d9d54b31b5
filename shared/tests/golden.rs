//! Every vector made by the real sops 3.11 decrypts to its plaintext twin.

use kage_core::document::{Format, Node, parse};
use kage_core::sops::{SopsFile, decrypt};

use crate::common::{identity, read};

fn check(enc: &str, plain: &str, format: Format, keys: &[&str]) -> SopsFile {
    let ids: Vec<_> = keys
        .iter()
        .map(|k| identity(&format!("sops/{k}")))
        .collect();
    let docs = parse(&read(&format!("sops/{enc}")), format).unwrap();
    let file = SopsFile::open(&docs, &ids).unwrap_or_else(|e| panic!("{enc}: {e}"));
    let want = parse(&read(&format!("sops/{plain}")), format).unwrap();
    assert_eq!(file.plaintext().len(), want.len(), "{enc}");
    for (got, want) in file.plaintext().iter().zip(&want) {
        assert_eq!(
            numbers_as_f64(got.to_json_value()),
            numbers_as_f64(want.to_json_value()),
            "{enc}"
        );
    }
    file
}

#[test]
fn app_yaml_all_types_and_comments() {
    let file = check("app.enc.yaml", "app.yaml", Format::Yaml, &["key.txt"]);
    // Comments decrypt with their container's path as AAD and keep their place.
    let want = parse(&read("sops/app.yaml"), Format::Yaml).unwrap();
    assert_eq!(file.plaintext()[0], want[0]);
}

#[test]
fn config_json() {
    check("config.enc.json", "config.json", Format::Json, &["key.txt"]);
}

#[test]
fn kubernetes_secret_encrypted_regex() {
    check("secret.enc.yaml", "secret.yaml", Format::Yaml, &["key.txt"]);
}

#[test]
fn kubernetes_secret_mac_only_encrypted() {
    let file = check(
        "secret.maconly.enc.yaml",
        "secret.yaml",
        Format::Yaml,
        &["key.txt"],
    );
    assert!(file.metadata().mac_only_encrypted);
}

#[test]
fn multi_document() {
    check("multi.enc.yaml", "multi.yaml", Format::Yaml, &["key.txt"]);
}

#[test]
fn comments_inside_sequences() {
    let file = check("lc.enc.yaml", "lc.yaml", Format::Yaml, &["key.txt"]);
    let want = parse(&read("sops/lc.yaml"), Format::Yaml).unwrap();
    assert_eq!(file.plaintext()[0], want[0]);
}

#[test]
fn shamir_two_of_three_groups() {
    check(
        "shamir.enc.yaml",
        "shamir.yaml",
        Format::Yaml,
        &["key.txt", "g2.txt"],
    );
    // One group alone is not enough.
    let docs = parse(&read("sops/shamir.enc.yaml"), Format::Yaml).unwrap();
    let err = decrypt(&docs, &[identity("sops/key.txt")]).err().unwrap();
    assert!(err.to_string().contains("key groups"), "{err}");
}

#[test]
fn reseal_keeps_unchanged_ciphertext() {
    let ids = [identity("sops/key.txt")];
    let docs = parse(&read("sops/secret.enc.yaml"), Format::Yaml).unwrap();
    let file = SopsFile::open(&docs, &ids).unwrap();
    let mut plain = file.plaintext().to_vec();
    if let Some(data) = plain[0].root.get_mut("data") {
        data.insert("password", Node::string("bmV3"));
    }
    let out = file.reseal(&plain).unwrap();
    let data_before = docs[0].root.get("data").unwrap();
    let data_after = out[0].root.get("data").unwrap();
    assert_eq!(data_before.get("username"), data_after.get("username"));
    assert_ne!(data_before.get("password"), data_after.get("password"));
    assert_eq!(*decrypt(&out, &ids).unwrap(), plain);
}

/// sops 3.11 reads every JSON number as a float (`8080` comes back typed `float`): compare
/// numbers by value.
pub fn numbers_as_f64(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) => serde_json::json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.into_iter().map(numbers_as_f64).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, numbers_as_f64(v))).collect())
        }
        other => other,
    }
}

/// Sealed-value vectors (`docs/format.md`): each file states what opening it must give.
#[test]
fn sealed_value_vectors() {
    use kage_core::keys::KeyRing;
    use kage_core::sealed::{Binding, open};
    let dir = crate::common::vectors().join("sealed");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}: ")))
                .unwrap_or_else(|| panic!("{}: no {k}", path.display()))
                .to_string()
        };
        let ring = KeyRing::from_identities([identity(&field("identity"))]);
        let binding = Binding::new(
            field("scope").parse().unwrap(),
            &field("namespace"),
            &field("name"),
            &field("key"),
        );
        let result = open(&field("sealed"), &binding, &ring);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        match field("expect").as_str() {
            "success" => {
                let value = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(hex, field("value-hex"), "{name}");
            }
            "binding mismatch" => assert!(
                matches!(result, Err(kage_core::Error::BindingMismatch { .. })),
                "{name}"
            ),
            "unknown key" => assert!(
                matches!(result, Err(kage_core::Error::UnknownKey { .. })),
                "{name}"
            ),
            "corrupt" => assert!(
                matches!(result, Err(kage_core::Error::Corrupt { .. })),
                "{name}"
            ),
            other => panic!("{name}: unknown expectation {other}"),
        }
        assert_eq!(
            name.starts_with("fail_"),
            field("expect") != "success",
            "{name}"
        );
        seen += 1;
    }
    assert_eq!(seen, 8);
}
