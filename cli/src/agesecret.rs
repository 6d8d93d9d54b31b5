//! The AgeSecret in sealed form (DESIGN §2.1): reading, sealing a Secret into one, opening one
//! back into a Secret, and the fixed output layout:
//! apiVersion, kind, metadata (name, namespace, labels, annotations), spec (scope,
//! encryptedData sorted by key, template, then any other spec fields as found).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kage_core::keys::{KeyRing, Recipient};
use kage_core::sealed::{self, Binding, Scope};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::exit::{Exit, user};
use crate::manifest::Secret;
use crate::raw::{RawDoc, strings};
use crate::tree::Node;

/// `apiVersion` of AgeSecrets.
pub const API_VERSION: &str = "kage.dev/v1alpha1";

/// A sealed AgeSecret.
#[derive(Debug, Clone, Default)]
pub struct AgeSecret {
    /// `metadata.name`.
    pub name: Option<String>,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// The AgeSecret's own labels.
    pub labels: BTreeMap<String, String>,
    /// The AgeSecret's own annotations.
    pub annotations: BTreeMap<String, String>,
    /// `spec.scope` (the clear statement of the scope sealed inside each value).
    pub scope: Scope,
    /// `spec.encryptedData`: key → `kage:v1:…`.
    pub encrypted: BTreeMap<String, String>,
    /// `spec.template.type`.
    pub secret_type: Option<String>,
    /// `spec.template.immutable`.
    pub immutable: Option<bool>,
    /// `spec.template.metadata.labels`.
    pub template_labels: BTreeMap<String, String>,
    /// `spec.template.metadata.annotations`.
    pub template_annotations: BTreeMap<String, String>,
    /// `spec.template.data`: non-secret values in clear (base64, like a Secret's data).
    pub template_data: BTreeMap<String, String>,
    /// Other fields of `spec.template`, kept as found.
    pub template_extra: BTreeMap<String, Value>,
    /// Other fields of `spec` (`suspend`, …), kept as found.
    pub spec_extra: BTreeMap<String, Value>,
}

impl AgeSecret {
    /// Reads the sealed form from a parsed document.
    pub fn from_raw(doc: &RawDoc) -> Result<AgeSecret> {
        match doc.api_version.as_deref() {
            Some(API_VERSION) => {}
            Some(other) => {
                return Err(user(format!(
                    "apiVersion {other} is not supported (expected {API_VERSION})"
                ))
                .into());
            }
            None => return Err(user("apiVersion is missing").into()),
        }
        let mut out = AgeSecret::default();
        if let Some(meta) = &doc.metadata {
            out.name.clone_from(&meta.name);
            out.namespace.clone_from(&meta.namespace);
            out.labels = strings(&meta.labels);
            out.annotations = strings(&meta.annotations);
            out.annotations.remove(crate::manifest::LAST_APPLIED);
        }
        let spec = doc.spec.as_ref().ok_or_else(|| user("spec is missing"))?;
        let scope = spec
            .scope
            .as_deref()
            .ok_or_else(|| user("spec.scope is missing"))?;
        out.scope = scope.parse().map_err(|_| {
            user(format!(
                "spec.scope {scope:?} is not strict, namespace or cluster"
            ))
        })?;
        for (key, val) in spec.encrypted_data.iter().flatten() {
            let s = val.as_deref().unwrap_or("");
            if !sealed::is_sealed(s) {
                return Err(user(format!(
                    "spec.encryptedData.{key} is not a sealed value (kage:v1:…)"
                ))
                .hint("plaintext must never sit in encryptedData; seal it with `kage set`")
                .into());
            }
            out.encrypted.insert(key.clone(), s.to_string());
        }
        for (present, k) in [
            (spec.data.is_some(), "data"),
            (spec.string_data.is_some(), "stringData"),
        ] {
            if present {
                return Err(user(format!(
                    "spec.{k} holds values in clear in a sealed AgeSecret"
                ))
                .hint("secret values belong in spec.encryptedData; seal them with `kage set`")
                .into());
            }
        }
        if let Some(t) = &spec.template {
            out.secret_type.clone_from(&t.secret_type);
            out.immutable = t.immutable;
            if let Some(m) = &t.metadata {
                out.template_labels = strings(&m.labels);
                out.template_annotations = strings(&m.annotations);
            }
            out.template_data = strings(&t.data);
            out.template_extra = t.extra.clone();
        }
        out.spec_extra = spec.extra.clone();
        Ok(out)
    }

    /// The binding of `key` in this AgeSecret, from its metadata and `spec.scope`.
    pub fn binding(&self, key: &str) -> Result<Binding> {
        binding_for(
            self.scope,
            self.namespace.as_deref(),
            self.name.as_deref(),
            key,
        )
    }

    /// Seals `value` under `key` (replacing any old value).
    pub fn seal_value(&mut self, key: &str, value: &[u8], recipients: &[Recipient]) -> Result<()> {
        crate::manifest::check_key_name(key)?;
        let binding = self.binding(key)?;
        let s =
            sealed::seal(value, &binding, recipients).with_context(|| format!("sealing {key}"))?;
        self.encrypted.insert(key.to_string(), s);
        Ok(())
    }

    /// Seals a whole Secret.
    pub fn seal(secret: &Secret, scope: Scope, recipients: &[Recipient]) -> Result<AgeSecret> {
        let mut out = AgeSecret {
            name: secret.name.clone(),
            namespace: secret.namespace.clone(),
            scope,
            secret_type: Some(secret.type_or_opaque().to_string()),
            immutable: secret.immutable,
            template_labels: secret.labels.clone(),
            template_annotations: secret.annotations.clone(),
            ..AgeSecret::default()
        };
        binding_for(scope, out.namespace.as_deref(), out.name.as_deref(), "")?;
        for (k, v) in &secret.data {
            out.seal_value(k, v, recipients)?;
        }
        Ok(out)
    }

    /// Opens every value (binding checked against the metadata) into a Secret.
    pub fn open(&self, ring: &KeyRing) -> Result<Secret> {
        let mut secret = Secret {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            labels: self.template_labels.clone(),
            annotations: self.template_annotations.clone(),
            secret_type: self.secret_type.clone(),
            immutable: self.immutable,
            data: BTreeMap::new(),
        };
        for (k, v) in &self.template_data {
            let bytes = STANDARD
                .decode(v.as_bytes())
                .map_err(|_| user(format!("spec.template.data.{k} is not valid base64")))?;
            secret.data.insert(k.clone(), Zeroizing::new(bytes));
        }
        for (k, v) in &self.encrypted {
            let plain = self.open_value(k, v, ring)?;
            secret.data.insert(k.clone(), plain);
        }
        Ok(secret)
    }

    /// Opens one value with its binding checked.
    pub fn open_value(&self, key: &str, value: &str, ring: &KeyRing) -> Result<Zeroizing<Vec<u8>>> {
        let binding = self.binding(key)?;
        sealed::open(value, &binding, ring).with_context(|| format!("spec.encryptedData.{key}"))
    }

    /// The output tree, in the documented order.
    pub fn to_node(&self) -> Node {
        self.clone().into_node()
    }

    /// The output tree, in the documented order, without copying the values.
    pub fn into_node(self) -> Node {
        let mut meta = Vec::new();
        if let Some(n) = &self.name {
            meta.push(("name", Node::str(n)));
        }
        if let Some(ns) = &self.namespace {
            meta.push(("namespace", Node::str(ns)));
        }
        if !self.labels.is_empty() {
            meta.push(("labels", str_map(&self.labels)));
        }
        if !self.annotations.is_empty() {
            meta.push(("annotations", str_map(&self.annotations)));
        }
        let mut template = Vec::new();
        template.push((
            "type".to_string(),
            Node::str(self.secret_type.as_deref().unwrap_or("Opaque")),
        ));
        if let Some(i) = self.immutable {
            template.push(("immutable".to_string(), Node::Bool(i)));
        }
        let mut tmeta = Vec::new();
        if !self.template_labels.is_empty() {
            tmeta.push(("labels", str_map(&self.template_labels)));
        }
        if !self.template_annotations.is_empty() {
            tmeta.push(("annotations", str_map(&self.template_annotations)));
        }
        if !tmeta.is_empty() {
            template.push(("metadata".to_string(), Node::map(tmeta)));
        }
        if !self.template_data.is_empty() {
            template.push(("data".to_string(), str_map(&self.template_data)));
        }
        for (k, v) in &self.template_extra {
            template.push((k.clone(), Node::from_value(v)));
        }
        let mut spec = vec![
            ("scope".to_string(), Node::str(self.scope.as_str())),
            (
                "encryptedData".to_string(),
                Node::Map(
                    self.encrypted
                        .into_iter()
                        .map(|(k, v)| (k, Node::Str(v)))
                        .collect(),
                ),
            ),
            ("template".to_string(), Node::Map(template)),
        ];
        for (k, v) in &self.spec_extra {
            spec.push((k.clone(), Node::from_value(v)));
        }
        Node::map([
            ("apiVersion", Node::str(API_VERSION)),
            ("kind", Node::str("AgeSecret")),
            ("metadata", Node::map(meta)),
            ("spec", Node::Map(spec)),
        ])
    }
}

/// A string map as a node (sorted by key).
pub fn str_map(m: &BTreeMap<String, String>) -> Node {
    Node::Map(m.iter().map(|(k, v)| (k.clone(), Node::str(v))).collect())
}

/// The binding for a value, checking that the scope has what it binds.
pub fn binding_for(
    scope: Scope,
    namespace: Option<&str>,
    name: Option<&str>,
    key: &str,
) -> Result<Binding> {
    match scope {
        Scope::Strict if namespace.is_none() || name.is_none() => Err(user(
            "strict scope binds values to a namespace and a name, and the Secret lacks one",
        )
        .hint("set metadata.name and metadata.namespace, pass --name/--namespace, or choose --scope namespace|cluster")
        .exit(Exit::Usage)
        .into()),
        Scope::Namespace if namespace.is_none() => Err(user(
            "namespace scope binds values to a namespace, and the Secret has none",
        )
        .hint("set metadata.namespace or pass --namespace, or choose --scope cluster")
        .exit(Exit::Usage)
        .into()),
        _ => Ok(Binding::new(
            scope,
            namespace.unwrap_or(""),
            name.unwrap_or(""),
            key,
        )),
    }
}

/// A Secret manifest as an output tree: apiVersion, kind, metadata, type, immutable, data or
/// stringData. With `string_data`, UTF-8 values without control characters go to `stringData`.
pub fn secret_to_node(secret: &Secret, string_data: bool) -> Node {
    let mut meta = Vec::new();
    if let Some(n) = &secret.name {
        meta.push(("name", Node::str(n)));
    }
    if let Some(ns) = &secret.namespace {
        meta.push(("namespace", Node::str(ns)));
    }
    if !secret.labels.is_empty() {
        meta.push(("labels", str_map(&secret.labels)));
    }
    if !secret.annotations.is_empty() {
        meta.push(("annotations", str_map(&secret.annotations)));
    }
    let mut data = Vec::new();
    let mut sdata = Vec::new();
    for (k, v) in &secret.data {
        match std::str::from_utf8(v) {
            Ok(s) if string_data && s.chars().all(|c| !c.is_control() || c == '\n') => {
                sdata.push((k.clone(), Node::str(s)))
            }
            _ => data.push((k.clone(), Node::str(STANDARD.encode(v)))),
        }
    }
    let mut top = vec![
        ("apiVersion", Node::str("v1")),
        ("kind", Node::str("Secret")),
        ("metadata", Node::map(meta)),
        ("type", Node::str(secret.type_or_opaque())),
    ];
    if let Some(i) = secret.immutable {
        top.push(("immutable", Node::Bool(i)));
    }
    if !data.is_empty() || sdata.is_empty() {
        top.push(("data", Node::Map(data)));
    }
    if !sdata.is_empty() {
        top.push(("stringData", Node::Map(sdata)));
    }
    Node::map(top)
}
