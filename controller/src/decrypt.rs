//! Opening an AgeSecret's values (both forms), pure: no client, no clock.
//!
//! Used by the reconcile [`plan`](crate::plan) and by `POST /v1/verify` / `POST /v1/reencrypt`.
//! Failures carry a [`Reason`] and a message that names keys, kids and bindings but never a value.

use std::collections::BTreeMap;

use base64::Engine as _;
use kage_core::api::v1alpha1::{AgeSecret, AgeSecretSpec};
use kage_core::keys::{KeyRing, Kid};
use kage_core::sealed::{self, Binding};
use kage_core::{ErrorKind, document::Document, sops};
use zeroize::Zeroizing;

use crate::plan::Reason;

/// The decrypted values, keyed by Secret data key, in zeroizing buffers.
pub type Values = BTreeMap<String, Zeroizing<Vec<u8>>>;

/// Why an AgeSecret could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The status reason.
    pub reason: Reason,
    /// A message for status and events (no secret text).
    pub message: String,
}

impl Failure {
    /// A failure with a reason and a message.
    pub fn new(reason: Reason, message: impl Into<String>) -> Failure {
        Failure {
            reason,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(Reason::InvalidSpec, message)
    }
}

/// Options that change what is accepted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Accept SOPS AgeSecrets without an encrypted `spec.binding`.
    pub allow_unbound_sops: bool,
}

/// Which form an AgeSecret is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `spec.encryptedData`.
    Sealed,
    /// Top-level `sops` block with `spec.data` / `spec.stringData` / `spec.binding`.
    Sops,
}

/// Why `key` cannot be a Secret data key (kage-core's mirror of Kubernetes' `IsConfigMapKey`),
/// as one message naming the field, or `None` when it can.
fn bad_data_key(field: &str, key: &str) -> Option<Failure> {
    let why = kage_core::k8s::is_config_map_key(key);
    (!why.is_empty()).then(|| {
        Failure::invalid(format!(
            "{field}: {key:?} is not a valid Secret data key: {} (Kubernetes IsConfigMapKey: letters, digits, '-', '_', '.'; not '.' or '..' or starting with '..'; at most 253)",
            why.join("; ")
        ))
    })
}

/// Structural checks that need no key: form, key names, template overlap.
pub fn validate(ags: &AgeSecret) -> Result<Form, Failure> {
    let spec = ags.body();
    let sops_fields =
        !spec.data.is_empty() || !spec.string_data.is_empty() || spec.binding.is_some();
    let form = if ags.is_sops() {
        if !spec.encrypted_data.is_empty() {
            return Err(Failure::invalid(
                "spec.encryptedData cannot be combined with a sops block (use one form)",
            ));
        }
        Form::Sops
    } else {
        if sops_fields {
            return Err(Failure::invalid(
                "spec.data, spec.stringData and spec.binding need a top-level sops block (SOPS form); sealed values go in spec.encryptedData",
            ));
        }
        Form::Sealed
    };
    let mut seen: Vec<&str> = Vec::new();
    let fields = [
        ("spec.encryptedData", &spec.encrypted_data),
        ("spec.data", &spec.data),
        ("spec.stringData", &spec.string_data),
    ];
    for (field, key) in fields
        .iter()
        .flat_map(|(f, m)| m.keys().map(move |k| (*f, k)))
    {
        if let Some(f) = bad_data_key(field, key) {
            return Err(f);
        }
        if seen.contains(&key.as_str()) {
            return Err(Failure::invalid(format!(
                "key {key:?} is in both spec.data and spec.stringData"
            )));
        }
        seen.push(key);
    }
    for key in spec.template.data.keys() {
        if let Some(f) = bad_data_key("spec.template.data", key) {
            return Err(f);
        }
        if seen.contains(&key.as_str()) {
            return Err(Failure::invalid(format!(
                "spec.template.data: key {key:?} is also an encrypted value"
            )));
        }
    }
    Ok(form)
}

/// The kids an AgeSecret names, sorted and deduplicated (no decryption). Unparseable values
/// contribute nothing.
pub fn kids(ags: &AgeSecret) -> Vec<String> {
    let mut kids: Vec<String> = if ags.is_sops() {
        sops_recipients(ags)
            .into_iter()
            .map(|r| Kid::of_recipient_str(&r).to_string())
            .collect()
    } else {
        ags.body()
            .encrypted_data
            .values()
            .filter_map(|v| sealed::kids_of(v).ok())
            .flatten()
            .map(|k| k.to_string())
            .collect()
    };
    kids.sort();
    kids.dedup();
    kids
}

fn sops_recipients(ags: &AgeSecret) -> Vec<String> {
    sops_document(ags)
        .and_then(|doc| sops::recipients_of(std::slice::from_ref(&doc)).ok())
        .map(|groups| groups.into_iter().flatten().collect())
        .unwrap_or_default()
}

/// The SOPS document the MAC was computed over: `apiVersion`, `kind`, `spec` and `sops`, keys
/// sorted (what the API server keeps). `metadata` and `status` are left out: the API server adds
/// to them and kage seals with `mac_only_encrypted`, where they do not count anyway.
pub fn sops_document(ags: &AgeSecret) -> Option<Document> {
    let sops_block = ags.spec.sops.as_ref()?;
    let spec = serde_json::to_value(ags.body()).ok()?;
    let doc = serde_json::json!({
        "apiVersion": kage_core::k8s::API_VERSION,
        "kind": kage_core::k8s::KIND,
        "spec": spec,
        "sops": sops_block,
    });
    Some(Document::from_json_value(&doc))
}

/// Open every value of the AgeSecret with the active keys and check its binding.
pub fn open(ags: &AgeSecret, ring: &KeyRing, opts: Options) -> Result<Values, Failure> {
    match validate(ags)? {
        Form::Sealed => open_sealed(ags, ring),
        Form::Sops => open_sops(ags, ring, opts),
    }
}

fn location(ags: &AgeSecret) -> Result<(String, String), Failure> {
    let name = ags
        .metadata
        .name
        .clone()
        .ok_or_else(|| Failure::invalid("metadata.name is missing"))?;
    let namespace = ags
        .metadata
        .namespace
        .clone()
        .ok_or_else(|| Failure::invalid("metadata.namespace is missing"))?;
    Ok((namespace, name))
}

fn reason_of(e: &kage_core::Error) -> Reason {
    match e.kind() {
        ErrorKind::UnknownKey => Reason::UnknownKey,
        ErrorKind::BindingMismatch => Reason::ScopeMismatch,
        ErrorKind::Parse | ErrorKind::Invalid | ErrorKind::InvalidKey => Reason::InvalidSpec,
        _ => Reason::DecryptFailed,
    }
}

fn open_sealed(ags: &AgeSecret, ring: &KeyRing) -> Result<Values, Failure> {
    let (namespace, name) = location(ags)?;
    let spec: &AgeSecretSpec = ags.body();
    let scope: sealed::Scope = spec.scope;
    let mut values = Values::new();
    let mut failures: Vec<(Reason, String)> = Vec::new();
    for (key, sealed_value) in &spec.encrypted_data {
        let expected = Binding::new(scope, &namespace, &name, key);
        match sealed::open(sealed_value, &expected, ring) {
            Ok(v) => {
                values.insert(key.clone(), v);
            }
            Err(e) => failures.push((reason_of(&e), format!("{key}: {e}"))),
        }
    }
    if failures.is_empty() {
        return Ok(values);
    }
    drop(values);
    Err(summarise(failures, spec.encrypted_data.len()))
}

/// One failure reason for several failing values: the most actionable first.
fn summarise(mut failures: Vec<(Reason, String)>, total: usize) -> Failure {
    failures.sort_by_key(|(r, _)| r.priority());
    let reason = failures[0].0;
    let n = failures.len();
    let mut message = if n == 1 {
        format!("1 of {total} values failed: ")
    } else {
        format!("{n} of {total} values failed: ")
    };
    let details: Vec<String> = failures.into_iter().map(|(_, m)| m).take(5).collect();
    message.push_str(&details.join("; "));
    if n > 5 {
        message.push_str(&format!("; and {} more", n - 5));
    }
    Failure::new(reason, message)
}

fn open_sops(ags: &AgeSecret, ring: &KeyRing, opts: Options) -> Result<Values, Failure> {
    let (namespace, name) = location(ags)?;
    let spec = ags.body();
    if spec.binding.is_none() && !opts.allow_unbound_sops {
        return Err(Failure::invalid(
            "SOPS AgeSecret without spec.binding: seal it with `kage seal --sops`, or run the controller with --allow-unbound-sops",
        ));
    }
    let doc = sops_document(ags).ok_or_else(|| Failure::invalid("the sops block is unreadable"))?;
    let identities: Vec<_> = ring.identities().cloned().collect();
    let plain = sops::decrypt(std::slice::from_ref(&doc), &identities).map_err(|e| {
        // A value moved or modified inside the SOPS tree surfaces as `Invalid` at its path:
        // everything but a missing key is a decryption failure here.
        let reason = match e.kind() {
            ErrorKind::UnknownKey => Reason::UnknownKey,
            _ => Reason::DecryptFailed,
        };
        Failure::new(reason, format!("sops: {e}"))
    })?;
    let plain_spec = plain
        .first()
        .and_then(|d| d.root.get("spec"))
        .ok_or_else(|| Failure::invalid("spec is missing after decryption"))?;

    if spec.binding.is_some() {
        let text = plain_spec
            .get("binding")
            .and_then(|n| n.as_str())
            .ok_or_else(|| Failure::invalid("spec.binding is not an encrypted string"))?;
        let (scope, b_ns, b_name) = sealed::parse_binding_text(text)
            .map_err(|e| Failure::new(Reason::InvalidSpec, e.to_string()))?;
        let want_scope: sealed::Scope = spec.scope;
        let ok = scope == want_scope
            && b_ns.as_deref().is_none_or(|n| n == namespace)
            && b_name.as_deref().is_none_or(|n| n == name);
        if !ok {
            let found = sealed::binding_text(
                scope,
                b_ns.as_deref().unwrap_or(""),
                b_name.as_deref().unwrap_or(""),
            );
            let expected = sealed::binding_text(want_scope, &namespace, &name);
            return Err(Failure::new(
                Reason::ScopeMismatch,
                format!("spec.binding: sealed for {found:?}, found at {expected:?}"),
            ));
        }
    }

    let mut values = Values::new();
    for (field, is_base64) in [("data", true), ("stringData", false)] {
        let Some(node) = plain_spec.get(field) else {
            continue;
        };
        for (key, value) in node.entries() {
            let text = scalar_text(value).ok_or_else(|| {
                Failure::invalid(format!("spec.{field}.{key} is not a scalar value"))
            })?;
            let bytes = if is_base64 {
                Zeroizing::new(
                    base64::engine::general_purpose::STANDARD
                        .decode(text.as_bytes())
                        .map_err(|_| {
                            Failure::invalid(format!("spec.data.{key} is not valid base64"))
                        })?,
                )
            } else {
                Zeroizing::new(text.as_bytes().to_vec())
            };
            values.insert(key.to_string(), bytes);
        }
    }
    Ok(values)
}

fn scalar_text(node: &kage_core::document::Node) -> Option<Zeroizing<String>> {
    match node.to_json_value() {
        serde_json::Value::String(s) => Some(Zeroizing::new(s)),
        serde_json::Value::Number(n) => Some(Zeroizing::new(n.to_string())),
        serde_json::Value::Bool(b) => Some(Zeroizing::new(b.to_string())),
        serde_json::Value::Null => Some(Zeroizing::new(String::new())),
        _ => None,
    }
}
