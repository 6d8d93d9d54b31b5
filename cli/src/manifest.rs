//! Kubernetes Secret manifests: reading (`data`, `stringData`, `kind: List`), stripping what the
//! API server adds, building from `--from-literal`/`--from-file`, and the checks the API server
//! would make, done before anything reaches Git.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::exit::{Exit, UserError, user};
use crate::raw::{RawDoc, flatten, strings};
use kage_core::k8s;

/// The annotation `kubectl apply` stores the whole previous object in (plaintext included).
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

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
    /// Anything else, with its kind if any.
    Other(Option<&'a str>),
}

/// What a document is (lists are flattened before).
pub fn kind_of(doc: &RawDoc) -> Kind<'_> {
    if doc.sops.is_some() {
        return Kind::Sops;
    }
    match doc.kind.as_deref() {
        Some("Secret") => Kind::Secret,
        Some("AgeSecret") => Kind::AgeSecret,
        other => Kind::Other(other),
    }
}

/// Reads one Secret document. `Err` for anything that is not a plaintext Secret.
pub fn secret_from_raw(doc: &RawDoc) -> Result<Secret> {
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
        Kind::Other(kind) => {
            return Err(user(match kind {
                Some(k) => format!("kind {k} is not a Secret"),
                None => "not a Kubernetes object (no `kind`)".to_string(),
            })
            .hint("`kage seal --sops` encrypts any YAML or JSON document")
            .into());
        }
    }
    if let Some(v) = &doc.api_version
        && v != "v1"
    {
        return Err(user("apiVersion of a Secret must be v1").into());
    }
    let mut secret = Secret::default();
    if let Some(meta) = &doc.metadata {
        secret.name.clone_from(&meta.name);
        secret.namespace.clone_from(&meta.namespace);
        secret.labels = strings(&meta.labels);
        secret.annotations = strings(&meta.annotations);
        secret.annotations.remove(LAST_APPLIED);
        // The controller's own marker on the Secrets it writes (kept when a decrypted Secret is
        // read back); it sets it again itself.
        secret.annotations.remove("kage.dev/managed");
        // managedFields, ownerReferences, uid, resourceVersion, creationTimestamp, generation,
        // selfLink, finalizers and status belong to one live object and are never read.
    }
    secret.secret_type.clone_from(&doc.secret_type);
    secret.immutable = doc.immutable;
    for (k, v) in doc.data.iter().flatten() {
        let text = v.as_deref().unwrap_or("");
        refuse_ciphertext(text, &format!("data.{k}"))?;
        let decoded = if text.bytes().any(|b| b.is_ascii_whitespace()) {
            let clean: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            STANDARD.decode(clean)
        } else {
            STANDARD.decode(text.as_bytes())
        };
        let bytes = decoded.map_err(|_| {
            user(format!("data.{k} is not valid base64"))
                .hint("values under data are base64; put text values under stringData")
        })?;
        secret.data.insert(k.clone(), Zeroizing::new(bytes));
    }
    for (k, v) in doc.string_data.iter().flatten() {
        let text = v.clone().unwrap_or_default();
        refuse_ciphertext(&text, &format!("stringData.{k}"))?;
        secret
            .data
            .insert(k.clone(), Zeroizing::new(text.into_bytes()));
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

/// The Secret as it will be sealed: `--name`/`--namespace`/`--type` applied (each fills what the
/// manifest lacks and refuses a different value), then checked.
pub fn prepare(
    secret: &mut Secret,
    name: Option<&str>,
    namespace: Option<&str>,
    secret_type: Option<&str>,
) -> Result<()> {
    apply_overrides(secret, name, namespace)?;
    if let Some(t) = secret_type {
        match &secret.secret_type {
            Some(cur) if cur != t => {
                return Err(user(format!(
                    "--type {t} conflicts with type {cur} in the manifest"
                ))
                .exit(Exit::Usage)
                .into());
            }
            _ => secret.secret_type = Some(t.to_string()),
        }
    }
    validate(secret)
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
        insert(
            k.to_string(),
            Zeroizing::new(v.as_bytes().to_vec()),
            "--from-literal",
        )?;
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
                        user(format!(
                            "--from-file {spec}: no file name to use as the key"
                        ))
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

/// Checks names, keys, labels, annotations, size and the type-specific keys as the API server
/// would (kage-core's mirror of Kubernetes' `ValidateSecret`), then the formats kubectl checks
/// (PEM for TLS, JSON for registry credentials). A Kubernetes rule broken exits 2.
pub fn validate(secret: &Secret) -> Result<()> {
    // The controller refuses these (docs/security.md, "Key injection"): say so at seal time.
    for (field, keys) in [
        ("labels", secret.labels.keys()),
        ("annotations", secret.annotations.keys()),
    ] {
        if let Some(k) = keys
            .into_iter()
            .find(|k| kage_core::keysecret::is_reserved_metadata_key(k))
        {
            return Err(user(format!(
                "metadata.{field}: {k:?} is in the kage.dev/ domain, which only kage itself writes"
            ))
            .hint("remove it; the controller refuses AgeSecrets whose template carries it")
            .into());
        }
    }
    let labels: Vec<(&str, &str)> = secret
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let annotations: Vec<(&str, &str)> = secret
        .annotations
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let data: Vec<(&str, &[u8])> = secret
        .data
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let fields = k8s::SecretFields {
        name: secret.name.as_deref(),
        namespace: secret.namespace.as_deref(),
        labels: &labels,
        annotations: &annotations,
        type_: secret.secret_type.as_deref(),
        immutable: secret.immutable,
        data: &data,
    };
    let t = secret.type_or_opaque();
    if t.is_empty() || t.len() > 253 {
        return Err(user("type must be 1 to 253 characters").into());
    }
    for e in k8s::validate_secret(&fields) {
        // The JSON of registry credentials: the format check below says where it breaks.
        if e.bad_value.as_deref() == Some("<secret contents redacted>") {
            continue;
        }
        return Err(rule_error(&e, secret));
    }
    check_formats(t, secret)
}

/// One broken Kubernetes rule as the user's error (exit 2), naming the field and the rule.
fn rule_error(e: &k8s::FieldError, secret: &Secret) -> anyhow::Error {
    let t = secret.type_or_opaque();
    let value = e.bad_value.as_deref().unwrap_or_default();
    let detail = &e.detail;
    let err = match (e.type_, e.field.as_str()) {
        (k8s::ErrorType::Invalid, "metadata.name") => user(format!(
            "metadata.name {value:?} is not a valid name: {detail} (Kubernetes IsDNS1123Subdomain)"
        ))
        .hint("names use lowercase letters, digits, `-` and `.`, at most 253 characters"),
        (k8s::ErrorType::Invalid, "metadata.namespace") => user(format!(
            "metadata.namespace {value:?} is not a valid namespace: {detail} (Kubernetes IsDNS1123Label)"
        ))
        .hint("namespaces use lowercase letters, digits and `-`, at most 63 characters"),
        (k8s::ErrorType::Invalid, f) if f.starts_with("data[") => return key_error(value, detail),
        (k8s::ErrorType::TooLong, "data") => {
            let total: usize = secret.data.values().map(|v| v.len()).sum();
            user(format!(
                "the Secret's data is {total} bytes; the API server's limit is {} (1 MiB, Kubernetes ValidateSecret)",
                k8s::MAX_SECRET_SIZE
            ))
            .hint("keep large files out of Secrets (a ConfigMap or a volume for non-secret data)")
        }
        (k8s::ErrorType::Required, f) if f.starts_with("metadata.annotations[") => {
            let key = &f["metadata.annotations[".len()..f.len() - 1];
            user(format!("a {t} Secret needs the annotation {key}"))
        }
        (k8s::ErrorType::Required, f) if f.starts_with("data[") => {
            let key = &f["data[".len()..f.len() - 1];
            if t == k8s::secret_type::BASIC_AUTH {
                user(format!("a {t} Secret needs data.username or data.password"))
            } else if secret.data.contains_key(key) {
                user(format!("data.{key} is empty; a {t} Secret needs a value there"))
            } else {
                user(format!("a {t} Secret needs data.{key}"))
            }
        }
        _ => user(format!("{e} (Kubernetes ValidateSecret)")),
    };
    err.exit(Exit::Usage).into()
}

fn key_error(key: &str, why: &str) -> anyhow::Error {
    UserError::new(format!(
        "{key:?} is not a valid Secret key: {why} (Kubernetes IsConfigMapKey)"
    ))
    .hint("keys may use letters, digits, `-`, `_` and `.`, at most 253 characters, and may not be `.` or `..` or start with `..`")
    .exit(Exit::Usage)
    .into()
}

/// The formats kubectl checks beyond the API server's rules.
fn check_formats(t: &str, secret: &Secret) -> Result<()> {
    match t {
        k8s::secret_type::TLS => {
            check_pem(&secret.data["tls.crt"], "tls.crt", |l| l == "CERTIFICATE")?;
            check_pem(&secret.data["tls.key"], "tls.key", |l| {
                l.ends_with("PRIVATE KEY")
            })?;
        }
        k8s::secret_type::DOCKER_CONFIG_JSON => {
            check_json_object(&secret.data[".dockerconfigjson"], ".dockerconfigjson", true)?;
        }
        k8s::secret_type::DOCKERCFG => {
            check_json_object(&secret.data[".dockercfg"], ".dockercfg", false)?;
        }
        _ => {}
    }
    Ok(())
}

fn check_json_object(bytes: &[u8], key: &str, auths: bool) -> Result<()> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        kage_core::limits::scan_json(text).with_context(|| format!("data.{key}"))?;
    }
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
    if auths
        && let Some(a) = obj.get("auths")
        && !a.is_object()
    {
        return Err(user(format!("data.{key}: `auths` must be an object")).into());
    }
    Ok(())
}

/// Checks that `bytes` is PEM whose first block has a matching label and decodes to DER.
fn check_pem(bytes: &[u8], key: &str, label_ok: impl Fn(&str) -> bool) -> Result<()> {
    let err = |what: &str| -> anyhow::Error {
        user(format!("data.{key} is not a valid PEM {what}"))
            .hint(
                "kubernetes.io/tls needs PEM: tls.crt a certificate chain, tls.key its private key",
            )
            .into()
    };
    let text = std::str::from_utf8(bytes).map_err(|_| err("file"))?;
    let blocks = pem_blocks(text).map_err(|_| err("file"))?;
    let Some((label, der)) = blocks.first() else {
        return Err(err("file"));
    };
    if !label_ok(label) {
        return Err(err(if key == "tls.crt" {
            "certificate"
        } else {
            "private key"
        }));
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

/// Secret data keys: Kubernetes' `IsConfigMapKey` (kage-core's mirror), exit 2 when broken.
pub fn check_key_name(key: &str) -> Result<()> {
    let why = k8s::is_config_map_key(key);
    if why.is_empty() {
        return Ok(());
    }
    Err(key_error(key, &why.join("; ")))
}

/// Reads every Secret of one input, for messages naming the document.
pub fn secrets_of(values: Vec<RawDoc>) -> Result<Vec<Secret>> {
    let docs = flatten(values);
    let n = docs.len();
    docs.iter()
        .enumerate()
        .map(|(i, d)| crate::exit::in_doc(secret_from_raw(d), i, n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::parse_docs;

    fn secret(yaml: &str) -> Result<Secret> {
        let (_, docs) = parse_docs(yaml.as_bytes())?;
        secret_from_raw(&docs[0])
    }

    #[test]
    fn data_and_string_data_merge_and_noise_is_stripped() {
        let s = secret(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\n  uid: x\n  resourceVersion: \"1\"\n  managedFields: [{{}}]\n  ownerReferences: [{{}}]\n  annotations:\n    {LAST_APPLIED}: '{{\"data\":{{\"p\":\"c2VjcmV0\"}}}}'\n    a: b\ndata:\n  p: c2VjcmV0\n  bin: AAEC/w==\nstringData:\n  p: override\n  u: héllo\nstatus: {{}}\n"
        ))
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
            ("kind: AgeSecret\n", "already sealed"),
            ("kind: Secret\nsops: {}\n", "already encrypted"),
            ("kind: ConfigMap\n", "not a Secret"),
            ("kind: Secret\ndata: {k: \"%%%\"}\n", "not valid base64"),
            ("kind: Secret\nstringData: {k: [1]}\n", "wrong type"),
            (
                "kind: Secret\nstringData: {k: \"kage:v1:x:y\"}\n",
                "already encrypted",
            ),
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
        assert!(
            validate(&mk(
                "kubernetes.io/tls",
                &[("tls.crt", b"x"), ("tls.key", b"y")]
            ))
            .is_err()
        );
        let cert = b"-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";
        let key = b"-----BEGIN PRIVATE KEY-----\nMAMCAQE=\n-----END PRIVATE KEY-----\n";
        validate(&mk(
            "kubernetes.io/tls",
            &[("tls.crt", cert), ("tls.key", key)],
        ))
        .unwrap();
        assert!(
            validate(&mk(
                "kubernetes.io/tls",
                &[("tls.crt", key), ("tls.key", cert)]
            ))
            .is_err()
        );
        assert!(
            validate(&mk(
                "kubernetes.io/dockerconfigjson",
                &[(".dockerconfigjson", b"{")]
            ))
            .is_err()
        );
        validate(&mk(
            "kubernetes.io/dockerconfigjson",
            &[(".dockerconfigjson", b"{\"auths\":{}}")],
        ))
        .unwrap();
        assert!(validate(&mk("kubernetes.io/basic-auth", &[])).is_err());
        validate(&mk("kubernetes.io/basic-auth", &[("username", b"")])).unwrap();
        assert!(validate(&mk("kubernetes.io/ssh-auth", &[])).is_err());
        assert!(validate(&mk("Opaque", &[("bad key", b"")])).is_err());
        assert!(validate(&mk("Opaque", &[("..x", b"")])).is_err());
        validate(&mk("Opaque", &[("a.b-c_D9", b"")])).unwrap();
        let big = vec![0u8; k8s::MAX_SECRET_SIZE + 1];
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
        let (_, docs) = parse_docs(
            b"kind: List\nitems:\n- {kind: Secret, metadata: {name: a}}\n- kind: SecretList\n  items: [{kind: Secret, metadata: {name: b}}]\n",
        )
        .unwrap();
        let docs = flatten(docs);
        assert_eq!(docs.len(), 2);
        assert_eq!(secrets_of(docs).unwrap()[1].name.as_deref(), Some("b"));
    }
}
