//! Typed reading of Secret manifests and sealed AgeSecrets.
//!
//! Every field is read into its Kubernetes type, so a value keeps its exact text: `x: y`,
//! `port: 0123` or `v: 1.10` under `stringData` or `labels` stay the strings `y`, `0123` and
//! `1.10` (sigs.k8s.io/yaml reads them the same way against the Secret's Go types). Unknown
//! fields (`status`, `managedFields`, …) are skipped without being kept.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use crate::exit::user;
use crate::tree::Format;

/// A string map whose values may be null (`key:` with nothing after it).
pub type Strings = BTreeMap<String, Option<String>>;

/// Any Kubernetes object as kage reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawDoc {
    /// `apiVersion`.
    pub api_version: Option<String>,
    /// `kind`.
    pub kind: Option<String>,
    /// `metadata`.
    pub metadata: Option<RawMeta>,
    /// `type` of a Secret.
    #[serde(rename = "type")]
    pub secret_type: Option<String>,
    /// `immutable` of a Secret.
    pub immutable: Option<bool>,
    /// `data` of a Secret (base64).
    pub data: Option<Strings>,
    /// `stringData` of a Secret.
    pub string_data: Option<Strings>,
    /// `spec` of an AgeSecret.
    pub spec: Option<RawSpec>,
    /// `items` of a `kind: List`.
    pub items: Option<Vec<RawDoc>>,
    /// A SOPS metadata block.
    pub sops: Option<IgnoredAny>,
}

/// `metadata`.
#[derive(Debug, Default, Deserialize)]
pub struct RawMeta {
    /// `name`.
    pub name: Option<String>,
    /// `namespace`.
    pub namespace: Option<String>,
    /// `labels`.
    pub labels: Option<Strings>,
    /// `annotations`.
    pub annotations: Option<Strings>,
}

/// `spec` of an AgeSecret.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawSpec {
    /// `scope`.
    pub scope: Option<String>,
    /// `encryptedData`.
    pub encrypted_data: Option<Strings>,
    /// `template`.
    pub template: Option<RawTemplate>,
    /// `data` (SOPS form only; in clear in a sealed AgeSecret it is an error).
    pub data: Option<IgnoredAny>,
    /// `stringData` (SOPS form only).
    pub string_data: Option<IgnoredAny>,
    /// Other fields (`suspend`, …), kept as found.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `spec.template`.
#[derive(Debug, Default, Deserialize)]
pub struct RawTemplate {
    /// `type`.
    #[serde(rename = "type")]
    pub secret_type: Option<String>,
    /// `immutable`.
    pub immutable: Option<bool>,
    /// `metadata` (labels, annotations).
    pub metadata: Option<RawMeta>,
    /// `data`: non-secret values in clear (base64).
    pub data: Option<Strings>,
    /// Other fields, kept as found.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Parses every document of a YAML or JSON stream (empty YAML documents are skipped). Errors
/// give a position and never the input text.
pub fn parse_docs(bytes: &[u8]) -> Result<(Format, Vec<RawDoc>)> {
    let format = Format::detect(bytes);
    kage_core::limits::check_size(bytes.len(), format.name())?;
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        user(format!("not UTF-8 text (line {line})"))
            .hint("binary Secret values belong base64-encoded under `data`, or in --from-file")
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let docs = match format {
        Format::Json => {
            // Counted before any map is built (a 3-million-key object is refused here).
            kage_core::limits::scan_json(text)?;
            let mut out = Vec::new();
            for v in serde_json::Deserializer::from_str(text).into_iter::<RawDoc>() {
                out.push(v.map_err(|e| {
                    user(format!(
                        "malformed JSON, or a field of the wrong type, at line {}, column {}",
                        e.line(),
                        e.column()
                    ))
                })?);
            }
            // as in YAML, a key given twice is refused (the maps above keep the last one)
            kage_core::document::check_json_unique_keys(text).map_err(duplicate_key)?;
            out
        }
        Format::Yaml => {
            let mut opts = kage_core::limits::yaml_options();
            opts.strict_booleans = true;
            let docs: Vec<Option<RawDoc>> = serde_saphyr::from_multiple_with_options(text, opts)
                .map_err(|e| -> anyhow::Error {
                    if let Some(limit) = kage_core::limits::from_yaml_error(&e) {
                        return limit.into();
                    }
                    let at = e
                        .location()
                        .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
                        .unwrap_or_default();
                    user(format!("malformed YAML, or a field of the wrong type,{at}")).into()
                })?;
            docs.into_iter().flatten().collect()
        }
    };
    Ok((format, docs))
}

/// The refusal of a JSON key given twice (the text parsed otherwise).
pub fn duplicate_key(e: kage_core::Error) -> anyhow::Error {
    user(e.to_string())
        .hint("a key given twice is ambiguous (the last one would win); keep one")
        .into()
}

/// Whether the bytes look like they hold a SOPS document (a top-level `sops` key). Cheap; the
/// SOPS engine decides for sure.
pub fn looks_like_sops(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.lines().any(|l| l.starts_with("sops:")) || text.contains("\"sops\":")
}

/// Flattens `kind: List` (and `…List`) documents into their items.
pub fn flatten(docs: Vec<RawDoc>) -> Vec<RawDoc> {
    let mut out = Vec::with_capacity(docs.len());
    for mut doc in docs {
        let is_list = doc.kind.as_deref().is_some_and(|k| k.ends_with("List"));
        match doc.items.take() {
            Some(items) if is_list => out.extend(flatten(items)),
            items => {
                doc.items = items;
                out.push(doc);
            }
        }
    }
    out
}

/// A string map with nulls read as empty strings.
pub fn strings(m: &Option<Strings>) -> BTreeMap<String, String> {
    m.iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_keep_their_text() {
        let (_, docs) = parse_docs(
            b"kind: Secret\nmetadata:\n  labels: {x: y, v: 1.10}\nstringData:\n  port: 0123\n  on: yes\n  e:\n",
        )
        .unwrap();
        let d = &docs[0];
        let labels = strings(&d.metadata.as_ref().unwrap().labels);
        assert_eq!(labels["x"], "y");
        assert_eq!(labels["v"], "1.10");
        let sd = strings(&d.string_data);
        assert_eq!(sd["port"], "0123");
        assert_eq!(sd["on"], "yes");
        assert_eq!(sd["e"], "");
    }

    #[test]
    fn streams_lists_and_empty_documents() {
        let (f, docs) = parse_docs(
            b"---\nkind: Secret\n---\n---\nkind: List\nitems:\n- kind: Secret\n- kind: Secret\n",
        )
        .unwrap();
        assert_eq!(f, Format::Yaml);
        assert_eq!(docs.len(), 2);
        assert_eq!(flatten(docs).len(), 3);
        let (f, docs) = parse_docs(b"{\"kind\":\"Secret\"}\n{\"kind\":\"Secret\"}").unwrap();
        assert_eq!(f, Format::Json);
        assert_eq!(docs.len(), 2);
    }

    #[test]
    fn errors_do_not_echo_input() {
        for bad in [
            &b"stringData:\n  password: \"s3cret\n  x: ["[..],
            b"{\"stringData\": {\"password\": \"s3cret\"",
            b"data: s3cret\n",
            b"immutable: s3cret\n",
        ] {
            let err = parse_docs(bad).unwrap_err();
            assert!(!format!("{err:#}").contains("s3cret"), "{err:#}");
        }
    }

    #[test]
    fn json_duplicate_keys_are_refused_at_any_depth() {
        for bad in [
            &b"{\"kind\": \"Secret\", \"stringData\": {\"a\": \"x\",\n \"a\": \"y\"}}"[..],
            b"{\"kind\": \"AgeSecret\", \"spec\": {\"suspend\": {\"b\": 1, \"b\": 2}}}",
            b"{\"kind\": \"Secret\"}\n{\"kind\": \"Secret\", \"data\": {\"k\": \"eA==\", \"k\": \"eQ==\"}}",
        ] {
            let err = parse_docs(bad).unwrap_err();
            let msg = format!("{err:#}");
            assert!(msg.contains("duplicate key"), "{msg}");
            assert!(!msg.contains("eA==") && !msg.contains("\"x\""), "{msg}");
        }
        // the same key in different objects is fine
        parse_docs(b"{\"kind\": \"Secret\", \"data\": {\"kind\": \"eA==\"}}").unwrap();
    }

    #[test]
    fn spec_extras_are_kept() {
        let (_, docs) = parse_docs(b"kind: AgeSecret\nspec:\n  scope: strict\n  suspend: false\n  template:\n    type: Opaque\n    x: 1\n").unwrap();
        let spec = docs[0].spec.as_ref().unwrap();
        assert_eq!(spec.extra["suspend"], Value::Bool(false));
        assert_eq!(spec.template.as_ref().unwrap().extra["x"], Value::from(1));
    }
}
