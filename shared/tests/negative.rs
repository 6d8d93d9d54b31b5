//! Bad input: each failure has its own typed error naming the path or field, never a panic.

use kage_core::Error;
use kage_core::document::{Format, parse};
use kage_core::keys::Identity;
use kage_core::sops::{EncryptOptions, decrypt, encrypt};

use crate::common::{identity, read};

fn secret_enc() -> String {
    String::from_utf8(read("sops/secret.enc.yaml")).unwrap()
}

fn try_decrypt(text: &str) -> Result<(), Error> {
    let docs = parse(text.as_bytes(), Format::Yaml)?;
    decrypt(&docs, &[identity("sops/key.txt")]).map(|_| ())
}

#[test]
fn wrong_key_is_unknown_key() {
    let docs = parse(secret_enc().as_bytes(), Format::Yaml).unwrap();
    let err = decrypt(&docs, &[Identity::generate()]).unwrap_err();
    assert!(matches!(err, Error::UnknownKey { .. }), "{err}");
}

#[test]
fn tampered_value_names_its_path() {
    let text = secret_enc();
    let line = text.lines().find(|l| l.contains("password: ENC[")).unwrap();
    let data = line
        .split("data:")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    let mut bytes = data.as_bytes().to_vec();
    bytes[0] = if bytes[0] == b'A' { b'B' } else { b'A' };
    let tampered = text.replace(data, std::str::from_utf8(&bytes).unwrap());
    let err = try_decrypt(&tampered).unwrap_err();
    match &err {
        Error::Corrupt { what } => {
            assert!(what.starts_with("data.password: "), "{what}");
            assert!(what.contains("authentication failed"), "{what}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn tampered_clear_value_is_a_mac_mismatch() {
    let tampered = secret_enc().replace("namespace: prod", "namespace: dev");
    assert!(matches!(
        try_decrypt(&tampered).unwrap_err(),
        Error::MacMismatch
    ));
}

#[test]
fn tampered_mac_is_a_mac_mismatch() {
    let text = secret_enc();
    let mac_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("mac: ENC["))
        .unwrap();
    let data = mac_line
        .split("data:")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    let mut bytes = data.as_bytes().to_vec();
    bytes[3] = if bytes[3] == b'A' { b'B' } else { b'A' };
    let tampered = text.replace(data, std::str::from_utf8(&bytes).unwrap());
    assert!(matches!(
        try_decrypt(&tampered).unwrap_err(),
        Error::MacMismatch
    ));
}

#[test]
fn a_missing_mac_is_an_integrity_failure() {
    let text = secret_enc();
    let mac_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("mac: ENC["))
        .unwrap();
    for stripped in [
        text.replace(&format!("{mac_line}\n"), ""),
        text.replace(mac_line, "    mac: \"\""),
    ] {
        let err = try_decrypt(&stripped).unwrap_err();
        assert!(matches!(err, Error::MacMissing), "{err}");
        assert_eq!(err.kind(), kage_core::ErrorKind::MacMismatch);
    }
}

#[test]
fn moved_value_fails_its_aad() {
    // Swap the two encrypted values: each now sits under the wrong key path.
    let text = secret_enc();
    let user = text
        .lines()
        .find(|l| l.contains("username: ENC["))
        .unwrap()
        .to_string();
    let pass = text
        .lines()
        .find(|l| l.contains("password: ENC["))
        .unwrap()
        .to_string();
    let u_val = user.split_once(": ").unwrap().1;
    let p_val = pass.split_once(": ").unwrap().1;
    let swapped = text
        .replace(&user, &format!("    username: {p_val}"))
        .replace(&pass, &format!("    password: {u_val}"));
    let err = try_decrypt(&swapped).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { what } if what.starts_with("data.username: ")),
        "{err}"
    );
}

#[test]
fn missing_version_and_unknown_cipher() {
    let text = secret_enc();
    let no_version: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("version:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let err = try_decrypt(&no_version).unwrap_err();
    assert!(err.to_string().contains("version"), "{err}");
    let bad_version = text.replace("version: 3.11.0", "version: \"3.0\"");
    assert!(
        try_decrypt(&bad_version)
            .unwrap_err()
            .to_string()
            .contains("semver")
    );

    let chacha = text.replacen("password: ENC[AES256_GCM", "password: ENC[CHACHA20", 1);
    let err = try_decrypt(&chacha).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { what } if what.starts_with("data.password: ")),
        "{err}"
    );
}

#[test]
fn truncated_and_non_utf8_input() {
    let text = secret_enc();
    let cut = &text[..text.len() / 2];
    assert!(try_decrypt(cut).is_err());
    let mut bytes = text.clone().into_bytes();
    bytes[10] = 0xff;
    let err = parse(&bytes, Format::Yaml).unwrap_err();
    assert!(matches!(&err, Error::Parse { line: Some(1), .. }), "{err}");
}

#[test]
fn clear_value_where_ciphertext_belongs() {
    let text = secret_enc();
    let line = text.lines().find(|l| l.contains("password: ENC[")).unwrap();
    let err = try_decrypt(&text.replace(line, "    password: 42")).unwrap_err();
    assert!(err.to_string().contains("data.password"), "{err}");
    let err = try_decrypt(&text.replace(line, "    password: hunter2")).unwrap_err();
    assert!(err.to_string().contains("data.password"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn not_a_sops_file_and_already_encrypted() {
    let err = try_decrypt("a: 1\n").unwrap_err();
    assert!(err.to_string().contains("sops"), "{err}");
    let docs = parse(secret_enc().as_bytes(), Format::Yaml).unwrap();
    let opts = EncryptOptions::new(vec![Identity::generate().recipient()]);
    let err = encrypt(&docs, &opts).unwrap_err();
    assert!(err.to_string().contains("already"), "{err}");
    let scalar_root = parse(b"just text\n", Format::Yaml).unwrap();
    assert!(encrypt(&scalar_root, &opts).is_err());
}

#[test]
fn huge_and_deep_input() {
    let opts = EncryptOptions::new(vec![Identity::generate().recipient()]);
    // Over the input size limit (kage_core::limits): refused before parsing.
    let huge = format!("v: {}\n", "a".repeat(10 << 20));
    let err = parse(huge.as_bytes(), Format::Yaml).unwrap_err();
    assert!(err.to_string().contains("input size limit"), "{err}");
    // A 7 MiB value (under it) encrypts and decrypts.
    let big = format!("v: {}\n", "a".repeat(7 << 20));
    let docs = parse(big.as_bytes(), Format::Yaml).unwrap();
    let key = Identity::generate();
    let opts_k = EncryptOptions::new(vec![key.recipient()]);
    let enc = encrypt(&docs, &opts_k).unwrap();
    assert_eq!(*decrypt(&enc, &[key]).unwrap(), docs);
    // Deep nesting is refused with an error, not a stack overflow.
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    assert!(parse(deep.as_bytes(), Format::Yaml).is_err());
    assert!(parse(deep.as_bytes(), Format::Json).is_err());
    let deep_block: String = (0..300)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    assert!(parse(deep_block.as_bytes(), Format::Yaml).is_err());
    let _ = opts;
}

#[test]
fn malformed_yaml_names_the_line() {
    let err = parse(b"a: 1\nb: [unclosed\nc: 2\n", Format::Yaml).unwrap_err();
    assert!(matches!(&err, Error::Parse { line: Some(_), .. }), "{err}");
    let err = parse(b"{\"a\": 1,}", Format::Json).unwrap_err();
    assert!(matches!(&err, Error::Parse { format: "JSON", .. }), "{err}");
}
