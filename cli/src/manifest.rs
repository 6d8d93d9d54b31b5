//! Kubernetes Secret manifests: reading (`data`, `stringData`, `kind: List`), stripping what the
//! API server adds, building from `--from-literal`/`--from-file`, and the checks the API server
//! would make, done before anything reaches Git.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::exit::{Exit, UserError, user};

/// The annotation `kubectl apply` stores the whole previous object in (plaintext included).
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The API server's limit on a Secret's data (keys and values).
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

/// A Secret, reduced to what kage keeps.
#[derive(Default)]
pub struct Secret {
    /// `metadata.name`.
    pub name: Option<String>,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations` without kubectl's last-applied copy.
    pub annotations: BTreeMap<String, String>,
    /// `type` (absent means Opaque).
    pub secret_type: Option<String>,
    /// `immutable`.
    pub immutable: Option<bool>,
    /// `data` and `stringData` merged (stringData wins, as on the API server), decoded.
    pub data: BTreeMap<String, Zeroizing<Vec<u8>>>,
}

impl Secret {
    /// The type, `Opaque` when absent.
    pub fn type_or_opaque(&self) -> &str {
        self.secret_type.as_deref().unwrap_or("Opaque")
    }
}

/// Classifies one parsed document.
pub enum Kind<'a> {
    /// `kind: Secret`.
    Secret,
    /// `kind: AgeSecret` in sealed form.
    AgeSecret,
    /// A document with a top-level `sops` block.
    Sops,
    /// `kind: List` (or `SecretList`, …) with `items`.
    List(&'a Vec<Value>),
    /// Anything else, with its kind if any.
    Other(Option<&'a str>),
}

/// What a document is.
pub fn kind_of(doc: &Value) -> Kind<'_> {
    if doc.get("sops").is_some_and(Value::is_object) {
        return Kind::Sops;
    }
    let kind = doc.get("kind").and_then(Value::as_str);
    match kind {
        Some("Secret") => Kind::Secret,
        Some("AgeSecret") => Kind::AgeSecret,
        Some(k) if k.ends_with("List") => match doc.get("items") {
            Some(Value::Array(items)) => Kind::List(items),
            _ => Kind::Other(Some(k)),
        },
        other => Kind::Other(other),
    }
}

/// Flattens `kind: List` documents into their items.
pub fn flatten(docs: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::with_capacity(docs.len());
    for doc in docs {
        if let Kind::List(items) = kind_of(&doc) {
            out.extend(flatten(items.clone()));
        } else {
            out.push(doc);
        }
    }
    out
}

/// Reads one Secret document. `Err` for anything that is not a plaintext Secret.
pub fn secret_from_value(doc: &Value) -> Result<Secret> {
    match kind_of(doc) {
        Kind::Secret => {}
        Kind::AgeSecret => {
            return Err(user("already sealed: this is an AgeSecret")
                .hint("to add or replace values use `kage seal --merge-into FILE` or `kage set`; to change recipients use `kage reencrypt`")
                .exit(Exit::AlreadyEncrypted)
                .into());
        }
        Kind::Sops => {
            return Err(user("already encrypted: the document has a `sops` block")
                .hint("use `kage edit` or `kage set` to change it, `kage reencrypt` to change recipients")
                .exit(Exit::AlreadyEncrypted)
                .into());
        }
        Kind::List(_) => unreachable!("lists are flattened first"),
        Kind::Other(kind) => {
            return Err(user(match kind {
                Some(k) => format!("kind {k} is not a Secret"),
                None => "not a Kubernetes object (no `kind`)".to_string(),
            })
            .hint("`kage seal --sops` encrypts any YAML or JSON document")
            .into());
        }
    }
    let obj = doc.as_object().expect("a Secret is a mapping");
    if let Some(v) = obj.get("apiVersion")
        && v.as_str() != Some("v1")
    {
        return Err(user("apiVersion of a Secret must be v1").into());
    }
    let mut secret = Secret::default();
    if let Some(meta) = obj.get("metadata") {
        let meta = meta
            .as_object()
            .ok_or_else(|| user("metadata must be a mapping"))?;
        secret.name = opt_string(meta, "name", "metadata.name")?;
        secret.namespace = opt_string(meta, "namespace", "metadata.namespace")?;
        secret.labels = string_map(meta.get("labels"), "metadata.labels")?;
        secret.annotations = string_map(meta.get("annotations"), "metadata.annotations")?;
        secret.annotations.remove(LAST_APPLIED);
        // managedFields, ownerReferences, uid, resourceVersion, creationTimestamp, generation,
        // selfLink and finalizers belong to one live object and are dropped.
    }
    secret.secret_type = opt_string(obj, "type", "type")?;
    secret.immutable = match obj.get("immutable") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(user("immutable must be true or false").into()),
    };
    if let Some(data) = obj.get("data").filter(|v| !v.is_null()) {
        let data = data
            .as_object()
            .ok_or_else(|| user("data must be a mapping"))?;
        for (k, v) in data {
            let text = match v {
                Value::String(s) => s.as_str(),
                Value::Null => "",
                _ => {
                    return Err(user(format!("data.{k} must be a base64 string"))
                        .hint("put text values under stringData")
                        .into());
                }
            };
            refuse_ciphertext(text, &format!("data.{k}"))?;
            let clean: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            let bytes = STANDARD.decode(clean.as_bytes()).map_err(|_| {
                user(format!("data.{k} is not valid base64"))
                    .hint("values under data are base64; put text values under stringData")
            })?;
            secret.data.insert(k.clone(), Zeroizing::new(bytes));
        }
    }
    if let Some(sd) = obj.get("stringData").filter(|v| !v.is_null()) {
        let sd = sd
            .as_object()
            .ok_or_else(|| user("stringData must be a mapping"))?;
        for (k, v) in sd {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                _ => {
                    return Err(user(format!("stringData.{k} must be a string"))
                        .hint("quote the value in YAML, e.g. port: \"5432\"")
                        .into());
                }
            };
            refuse_ciphertext(&text, &format!("stringData.{k}"))?;
            secret.data.insert(k.clone(), Zeroizing::new(text.into_bytes()));
        }
    }
    Ok(secret)
}

fn refuse_ciphertext(text: &str, path: &str) -> Result<()> {
    if kage_core::sealed::is_sealed(text) || text.starts_with("ENC[AES256_GCM,") {
        return Err(user(format!("{path} is already encrypted"))
            .hint("sealing twice would lock the value away; unseal it first or use `kage set`")
            .exit(Exit::AlreadyEncrypted)
            .into());
    }
    Ok(())
}

fn opt_string(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(user(format!("{path} must be a string")).into()),
    }
}

/// A map of strings (labels, annotations), with a clear error for anything else.
pub fn string_map(v: Option<&Value>, path: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                match v {
                    Value::String(s) => {
                        out.insert(k.clone(), s.clone());
                    }
                    _ => {
                        return Err(user(format!("{path}.{k} must be a string"))
                            .hint("quote the value in YAML")
                            .into());
                    }
                }
            }
        }
        Some(_) => return Err(user(format!("{path} must be a mapping")).into()),
    }
    Ok(out)
}

/// Applies `--name`/`--namespace`: fills what the manifest lacks, refuses a different value.
pub fn apply_overrides(
    secret: &mut Secret,
    name: Option<&str>,
    namespace: Option<&str>,
) -> Result<()> {
    for (field, flag, over, current) in [
        ("metadata.name", "--name", name, &mut secret.name),
        (
            "metadata.namespace",
            "--namespace",
            namespace,
            &mut secret.namespace,
        ),
    ] {
        if let Some(over) = over {
            match current {
                Some(cur) if cur != over => {
                    return Err(user(format!(
                        "{flag} {over} conflicts with {field} {cur} in the manifest"
                    ))
                    .hint(format!("drop {flag}, or change {field}"))
                    .exit(Exit::Usage)
                    .into());
                }
                _ => *current = Some(over.to_string()),
            }
        }
    }
    Ok(())
}

/// Builds a Secret from `--from-literal k=v` and `--from-file [k=]path`.
pub fn from_literals(literals: &[String], files: &[String]) -> Result<Secret> {
    let mut secret = Secret::default();
    let mut insert = |key: String, value: Zeroizing<Vec<u8>>, src: &str| -> Result<()> {
        if secret.data.contains_key(&key) {
            return Err(user(format!("key {key} is given twice ({src})"))
                .exit(Exit::Usage)
                .into());
        }
        secret.data.insert(key, value);
        Ok(())
    };
    for lit in literals {
        let (k, v) = lit.split_once('=').ok_or_else(|| {
            user("--from-literal needs KEY=VALUE")
                .hint("for example --from-literal password=s3cret")
                .exit(Exit::Usage)
        })?;
        if k.is_empty() {
            return Err(user("--from-literal needs a key before `=`")
                .exit(Exit::Usage)
                .into());
        }
        insert(k.to_string(), Zeroizing::new(v.as_bytes().to_vec()), "--from-literal")?;
    }
    for spec in files {
        let (key, path) = match spec.split_once('=') {
            Some((k, p)) if !k.is_empty() => (k.to_string(), Path::new(p)),
            _ => {
                let p = Path::new(spec.as_str());
                let key = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(|| {
                        user(format!("--from-file {spec}: no file name to use as the key"))
                            .hint("name the key: --from-file KEY=PATH")
                            .exit(Exit::Usage)
                    })?;
                (key, p)
            }
        };
        let bytes = crate::io::read_file(path)?;
        insert(key, Zeroizing::new(bytes), "--from-file")?;
    }
    Ok(secret)
}

/// Checks names, keys, size and the type-specific keys as the API server would.
pub fn validate(secret: &Secret) -> Result<()> {
    if let Some(name) = &secret.name {
        check_dns_subdomain(name, "metadata.name")?;
    }
    if let Some(ns) = &secret.namespace {
        check_dns_label(ns, "metadata.namespace")?;
    }
    let mut total = 0usize;
    for (k, v) in &secret.data {
        check_key_name(k)?;
        total += k.len() + v.len();
    }
    if total > MAX_SECRET_SIZE {
        return Err(user(format!(
            "the Secret's data is {total} bytes; the API server's limit is {MAX_SECRET_SIZE} (1 MiB)"
        ))
        .hint("keep large files out of Secrets (a ConfigMap or a volume for non-secret data)")
        .into());
    }
    let t = secret.type_or_opaque();
    if t.is_empty() || t.len() > 253 {
        return Err(user("type must be 1 to 253 characters").into());
    }
    check_type(t, secret)
}

fn required(secret: &Secret, key: &str, t: &str) -> Result<()> {
    if !secret.data.contains_key(key) {
        return Err(user(format!("a {t} Secret needs data.{key}")).into());
    }
    Ok(())
}

fn check_type(t: &str, secret: &Secret) -> Result<()> {
    match t {
        "kubernetes.io/tls" => {
            required(secret, "tls.crt", t)?;
            required(secret, "tls.key", t)?;
            check_pem(&secret.data["tls.crt"], "tls.crt", |l| l == "CERTIFICATE")?;
            check_pem(&secret.data["tls.key"], "tls.key", |l| {
                l.ends_with("PRIVATE KEY")
            })?;
        }
        "kubernetes.io/dockerconfigjson" => {
            required(secret, ".dockerconfigjson", t)?;
            check_json_object(&secret.data[".dockerconfigjson"], ".dockerconfigjson", true)?;
        }
        "kubernetes.io/dockercfg" => {
            required(secret, ".dockercfg", t)?;
            check_json_object(&secret.data[".dockercfg"], ".dockercfg", false)?;
        }
        "kubernetes.io/basic-auth" => {
            if !secret.data.contains_key("username") && !secret.data.contains_key("password") {
                return Err(user(format!("a {t} Secret needs data.username or data.password")).into());
            }
        }
        "kubernetes.io/ssh-auth" => {
            required(secret, "ssh-privatekey", t)?;
            if secret.data["ssh-privatekey"].is_empty() {
                return Err(user("data.ssh-privatekey is empty").into());
            }
        }
        "kubernetes.io/service-account-token" => {
            if !secret
                .annotations
                .contains_key("kubernetes.io/service-account.name")
            {
                return Err(user(format!(
                    "a {t} Secret needs the annotation kubernetes.io/service-account.name"
                ))
                .into());
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_json_object(bytes: &[u8], key: &str, auths: bool) -> Result<()> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        user(format!(
            "data.{key} is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let obj = v
        .as_object()
        .ok_or_else(|| user(format!("data.{key} must be a JSON object")))?;
    if auths && let Some(a) = obj.get("auths") && !a.is_object() {
        return Err(user(format!("data.{key}: `auths` must be an object")).into());
    }
    Ok(())
}

/// Checks that `bytes` is PEM whose first block has a matching label and decodes to DER.
fn check_pem(bytes: &[u8], key: &str, label_ok: impl Fn(&str) -> bool) -> Result<()> {
    let err = |what: &str| -> anyhow::Error {
        user(format!("data.{key} is not a valid PEM {what}"))
            .hint("kubernetes.io/tls needs PEM: tls.crt a certificate chain, tls.key its private key")
            .into()
    };
    let text = std::str::from_utf8(bytes).map_err(|_| err("file"))?;
    let blocks = pem_blocks(text).map_err(|_| err("file"))?;
    let Some((label, der)) = blocks.first() else {
        return Err(err("file"));
    };
    if !label_ok(label) {
        return Err(err(if key == "tls.crt" { "certificate" } else { "private key" }));
    }
    if der.first() != Some(&0x30) || der_len(der) != Some(der.len()) {
        return Err(err("block (the DER inside does not parse)"));
    }
    for (l, d) in &blocks[1..] {
        if !label_ok(l) || d.first() != Some(&0x30) {
            return Err(err("chain"));
        }
    }
    Ok(())
}

/// The total length of the DER SEQUENCE at the start of `der` (header plus content).
fn der_len(der: &[u8]) -> Option<usize> {
    let first = *der.get(1)?;
    if first < 0x80 {
        return Some(2 + first as usize);
    }
    let n = (first & 0x7f) as usize;
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for b in der.get(2..2 + n)? {
        len = (len << 8) | *b as usize;
    }
    Some(2 + n + len)
}

/// Splits PEM text into (label, DER) blocks.
fn pem_blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>, ()> {
    let mut out = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut closed = false;
        for l in lines.by_ref() {
            if l == end {
                closed = true;
                break;
            }
            if l.contains(':') {
                continue; // RFC 1421 headers of legacy encrypted keys
            }
            body.push_str(l);
        }
        if !closed {
            return Err(());
        }
        let der = STANDARD.decode(body.as_bytes()).map_err(|_| ())?;
        out.push((label.to_string(), der));
    }
    Ok(out)
}

/// Secret data keys: `[-._a-zA-Z0-9]+`, at most 253 characters, not `.`, `..` or `..…`.
pub fn check_key_name(key: &str) -> Result<()> {
    let bad = |why: &str| -> anyhow::Error {
        UserError::new(format!("{key:?} is not a valid Secret key: {why}"))
            .hint("keys may use letters, digits, `-`, `_` and `.`")
            .into()
    };
    if key.is_empty() {
        return Err(bad("empty"));
    }
    if key.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(bad("invalid character"));
    }
    if key == "." || key.starts_with("..") {
        return Err(bad("must not be `.` or start with `..`"));
    }
    Ok(())
}

fn check_dns_label(s: &str, path: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if !ok {
        return Err(user(format!(
            "{path} {s:?} is not a valid name (lowercase letters, digits and `-`, at most 63)"
        ))
        .into());
    }
    Ok(())
}

fn check_dns_subdomain(s: &str, path: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    if !ok {
        return Err(user(format!(
            "{path} {s:?} is not a valid name (lowercase letters, digits, `-` and `.`, at most 253)"
        ))
        .into());
    }
    Ok(())
}

/// Reads every Secret of one input, for messages naming the document.
pub fn secrets_of(values: Vec<Value>) -> Result<Vec<Secret>> {
    let docs = flatten(values);
    let many = docs.len() > 1;
    docs.iter()
        .enumerate()
        .map(|(i, d)| {
            secret_from_value(d).with_context(|| {
                if many {
                    format!("document {}", i + 1)
                } else {
                    "the document".to_string()
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(v: Value) -> Result<Secret> {
        secret_from_value(&v)
    }

    #[test]
    fn data_and_string_data_merge_and_noise_is_stripped() {
        let s = secret(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "prod", "uid": "x", "resourceVersion": "1",
                "managedFields": [{}], "ownerReferences": [{}],
                "annotations": {LAST_APPLIED: "{\"data\":{\"p\":\"c2VjcmV0\"}}", "a": "b"}},
            "data": {"p": "c2VjcmV0", "bin": "AAEC/w=="},
            "stringData": {"p": "override", "u": "héllo"},
            "status": {}
        }))
        .unwrap();
        assert_eq!(&*s.data["p"], b"override");
        assert_eq!(&*s.data["bin"], &[0, 1, 2, 255]);
        assert_eq!(&*s.data["u"], "héllo".as_bytes());
        assert_eq!(s.annotations.len(), 1);
        validate(&s).unwrap();
    }

    #[test]
    fn refusals() {
        for (doc, want) in [
            (json!({"kind": "AgeSecret"}), "already sealed"),
            (json!({"kind": "Secret", "sops": {}}), "already encrypted"),
            (json!({"kind": "ConfigMap"}), "not a Secret"),
            (json!({"kind": "Secret", "data": {"k": "%%%"}}), "not valid base64"),
            (json!({"kind": "Secret", "stringData": {"k": 5}}), "must be a string"),
            (json!({"kind": "Secret", "stringData": {"k": "kage:v1:x:y"}}), "already encrypted"),
        ] {
            let err = secret(doc).err().expect(want);
            assert!(format!("{err:#}").contains(want), "{want}: {err:#}");
        }
    }

    #[test]
    fn type_checks() {
        let mk = |t: &str, data: &[(&str, &[u8])]| Secret {
            secret_type: Some(t.into()),
            data: data
                .iter()
                .map(|(k, v)| (k.to_string(), Zeroizing::new(v.to_vec())))
                .collect(),
            ..Secret::default()
        };
        assert!(validate(&mk("kubernetes.io/tls", &[("tls.crt", b"x")])).is_err());
        assert!(validate(&mk("kubernetes.io/tls", &[("tls.crt", b"x"), ("tls.key", b"y")])).is_err());
        let cert = b"-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";
        let key = b"-----BEGIN PRIVATE KEY-----\nMAMCAQE=\n-----END PRIVATE KEY-----\n";
        validate(&mk("kubernetes.io/tls", &[("tls.crt", cert), ("tls.key", key)])).unwrap();
        assert!(validate(&mk("kubernetes.io/tls", &[("tls.crt", key), ("tls.key", cert)])).is_err());
        assert!(validate(&mk("kubernetes.io/dockerconfigjson", &[(".dockerconfigjson", b"{")])).is_err());
        validate(&mk("kubernetes.io/dockerconfigjson", &[(".dockerconfigjson", b"{\"auths\":{}}")])).unwrap();
        assert!(validate(&mk("kubernetes.io/basic-auth", &[])).is_err());
        validate(&mk("kubernetes.io/basic-auth", &[("username", b"")])).unwrap();
        assert!(validate(&mk("kubernetes.io/ssh-auth", &[])).is_err());
        assert!(validate(&mk("Opaque", &[("bad key", b"")])).is_err());
        assert!(validate(&mk("Opaque", &[("..x", b"")])).is_err());
        validate(&mk("Opaque", &[("a.b-c_D9", b"")])).unwrap();
        let big = vec![0u8; MAX_SECRET_SIZE + 1];
        assert!(validate(&mk("Opaque", &[("k", &big)])).is_err());
    }

    #[test]
    fn overrides_conflict() {
        let mut s = Secret {
            name: Some("a".into()),
            ..Secret::default()
        };
        apply_overrides(&mut s, Some("a"), Some("ns")).unwrap();
        assert_eq!(s.namespace.as_deref(), Some("ns"));
        assert!(apply_overrides(&mut s, Some("b"), None).is_err());
    }

    #[test]
    fn lists_flatten() {
        let docs = flatten(vec![json!({"kind": "List", "items": [
            {"kind": "Secret", "metadata": {"name": "a"}},
            {"kind": "SecretList", "items": [{"kind": "Secret", "metadata": {"name": "b"}}]}
        ]})]);
        assert_eq!(docs.len(), 2);
        assert_eq!(secrets_of(docs).unwrap()[1].name.as_deref(), Some("b"));
    }
}
