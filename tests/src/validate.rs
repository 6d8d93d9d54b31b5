//! Object validation (names, labels, Secrets, ConfigMaps) and the generation rule.

use crate::error::{Cause, Error, Result};
use base64::Engine as _;
use serde_json::{Map, Value};

use kage_core::k8s::{self, FieldError, SecretFields};

impl From<FieldError> for Cause {
    fn from(e: FieldError) -> Self {
        Cause::new(e.type_.cause_reason(), e.field.clone(), e.message())
    }
}

fn to_causes(errs: Vec<FieldError>) -> impl Iterator<Item = Cause> {
    errs.into_iter().map(Cause::from)
}

/// `name` checked with one of kage-core's mirrors of apimachinery's name rules.
fn name_causes(name: &str, rule: fn(&str) -> Vec<String>) -> Vec<Cause> {
    rule(name)
        .iter()
        .map(|m| Cause::invalid("metadata.name", name, m))
        .collect()
}

/// Which names a resource accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain (most resources).
    Subdomain,
    /// DNS-1123 label (namespaces, services).
    Label,
    /// Any path segment (RBAC objects, `system:` names).
    PathSegment,
}

impl NameRule {
    /// The rule for a built-in resource.
    pub fn for_resource(group: &str, plural: &str) -> Self {
        match (group, plural) {
            ("", "namespaces") | ("", "services") => NameRule::Label,
            ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
            _ => NameRule::Subdomain,
        }
    }
}

/// Validate metadata common to every object: name, labels, annotations.
pub fn metadata(obj: &Value, rule: NameRule) -> Vec<Cause> {
    let mut causes = vec![];
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "metadata.name",
            "Required value: name or generateName is required",
        ));
    } else {
        match rule {
            NameRule::Label => causes.extend(name_causes(name, k8s::is_dns1123_label)),
            NameRule::Subdomain => causes.extend(name_causes(name, k8s::is_dns1123_subdomain)),
            NameRule::PathSegment
                if name == "." || name == ".." || name.contains('/') || name.contains('%') =>
            {
                causes.push(Cause::invalid(
                    "metadata.name",
                    name,
                    "may not be '.' or '..' and may not contain '/' or '%'",
                ));
            }
            _ => {}
        }
    }
    if let Some(labels) = obj.pointer("/metadata/labels") {
        match labels.as_object() {
            Some(m) => {
                let strings: Vec<(&str, &str)> = m
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
                    .collect();
                causes.extend(to_causes(k8s::validate_labels(strings, "metadata.labels")));
                for (k, v) in m.iter().filter(|(_, v)| !v.is_string()) {
                    causes.push(Cause::invalid(
                        format!("metadata.labels[{k}]"),
                        &v.to_string(),
                        "must be a string",
                    ));
                }
            }
            None if labels.is_null() => {}
            None => causes.push(Cause::invalid(
                "metadata.labels",
                "",
                "must be a map of strings",
            )),
        }
    }
    if let Some(refs) = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
    {
        let mut controllers = 0;
        for (i, r) in refs.iter().enumerate() {
            for field in ["apiVersion", "kind", "name", "uid"] {
                if r.get(field)
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    // Indexed and Required, as kube-apiserver 1.37 answers (tests/tests/fidelity.rs).
                    causes.push(Cause::required(format!(
                        "metadata.ownerReferences[{i}].{field}"
                    )));
                }
            }
            if r.get("controller").and_then(Value::as_bool) == Some(true) {
                controllers += 1;
            }
        }
        if controllers > 1 {
            causes.push(Cause::invalid(
                "metadata.ownerReferences",
                "",
                "Only one reference can have Controller set to true",
            ));
        }
    }
    if let Some(ann) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        let strings: Vec<(&str, &str)> = ann
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
            .collect();
        causes.extend(to_causes(k8s::validate_annotations(
            strings,
            "metadata.annotations",
        )));
        for (k, v) in ann {
            if !v.is_string() {
                causes.push(Cause::invalid(
                    format!("metadata.annotations[{k}]"),
                    &v.to_string(),
                    "must be a string",
                ));
            }
        }
    }
    causes
}

/// Normalize and validate a Secret: fold `stringData` into `data`, check base64, keys,
/// size and type-specific keys. Returns 400 for undecodable data, 422 otherwise.
pub fn secret(obj: &mut Value) -> Result<Vec<Cause>> {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut causes = vec![];
    let Some(m) = obj.as_object_mut() else {
        return Err(Error::BadRequest("object must be a JSON object".into()));
    };
    if m.get("type").is_none_or(|t| t.as_str() == Some("")) {
        m.insert("type".into(), Value::String("Opaque".into()));
    }
    let mut data: Map<String, Value> = match m.remove("data") {
        Some(Value::Object(d)) => d,
        Some(Value::Null) | None => Map::new(),
        Some(_) => {
            return Err(Error::BadRequest(
                "data must be a map of base64 strings".into(),
            ));
        }
    };
    let mut decoded: Vec<(String, Vec<u8>)> = Vec::with_capacity(data.len());
    for (k, v) in &data {
        let bytes = match v {
            Value::String(s) => engine.decode(s).map_err(|e| {
                Error::BadRequest(format!(
                    "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte {}",
                    match e {
                        base64::DecodeError::InvalidByte(i, _) => i,
                        base64::DecodeError::InvalidLastSymbol(i, _) => i,
                        _ => s.len(),
                    }
                ))
            })?,
            Value::Null => vec![],
            _ => return Err(Error::BadRequest(format!("data[{k}] must be a base64 string"))),
        };
        decoded.push((k.clone(), bytes));
    }
    if let Some(sd) = m.remove("stringData") {
        match sd {
            Value::Object(sd) => {
                for (k, v) in sd {
                    let s = v.as_str().unwrap_or_default().to_string();
                    data.insert(k.clone(), Value::String(engine.encode(&s)));
                    decoded.retain(|(d, _)| *d != k);
                    decoded.push((k, s.into_bytes()));
                }
            }
            Value::Null => {}
            _ => {
                return Err(Error::BadRequest(
                    "stringData must be a map of strings".into(),
                ));
            }
        }
    }
    let type_ = m.get("type").and_then(Value::as_str);
    let annotations = string_map(m.get("metadata").and_then(|md| md.get("annotations")));
    let pairs: Vec<(&str, &[u8])> = decoded
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let fields = SecretFields {
        type_,
        annotations: &annotations,
        data: &pairs,
        ..SecretFields::default()
    };
    causes.extend(to_causes(k8s::validate_secret_body(&fields)));
    if !data.is_empty() {
        m.insert("data".into(), Value::Object(data));
    }
    Ok(causes)
}

/// The string entries of a JSON object (labels, annotations).
fn string_map(v: Option<&Value>) -> Vec<(&str, &str)> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// A stored Secret's `data`, decoded (undecodable values count as empty: stored objects were
/// validated on the way in).
fn decoded_data(obj: &Value) -> Vec<(String, Vec<u8>)> {
    let engine = base64::engine::general_purpose::STANDARD;
    obj.get("data")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let bytes = v
                        .as_str()
                        .and_then(|s| engine.decode(s).ok())
                        .unwrap_or_default();
                    (k.clone(), bytes)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Validate a ConfigMap's keys (data and binaryData share one key space).
pub fn configmap(obj: &Value) -> Vec<Cause> {
    let mut causes = vec![];
    let mut seen = std::collections::BTreeSet::new();
    for field in ["data", "binaryData"] {
        if let Some(m) = obj.get(field).and_then(Value::as_object) {
            for (k, v) in m {
                for msg in k8s::is_config_map_key(k) {
                    causes.push(Cause::invalid(format!("{field}[{k}]"), k, &msg));
                }
                if !seen.insert(k.clone()) {
                    causes.push(Cause::invalid(
                        format!("data[{k}]"),
                        k,
                        "duplicate of key present in binaryData",
                    ));
                }
                if field == "data" && !v.is_string() {
                    causes.push(Cause::invalid(
                        format!("data[{k}]"),
                        &v.to_string(),
                        "must be a string",
                    ));
                }
            }
        }
    }
    causes
}

/// Update rules for Secrets (kage-core's `ValidateSecretUpdate`) and ConfigMaps
/// (`ValidateConfigMapUpdate`): `immutable` freezes data; a Secret's type never changes.
pub fn immutable_update(old: &Value, new: &Value, kind: &str) -> Vec<Cause> {
    if kind == "Secret" {
        let (old_data, new_data) = (decoded_data(old), decoded_data(new));
        fn borrow(d: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
            d.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect()
        }
        let (o, n) = (borrow(&old_data), borrow(&new_data));
        fn fields<'a>(obj: &'a Value, data: &'a [(&'a str, &'a [u8])]) -> SecretFields<'a> {
            SecretFields {
                type_: obj.get("type").and_then(Value::as_str),
                immutable: obj.get("immutable").and_then(Value::as_bool),
                data,
                ..SecretFields::default()
            }
        }
        let (old_f, new_f) = (fields(old, &o), fields(new, &n));
        return to_causes(k8s::validate_secret_update(&new_f, &old_f)).collect();
    }
    let mut causes = vec![];
    if old.get("immutable").and_then(Value::as_bool) == Some(true) {
        for field in ["data", "binaryData"] {
            if old.get(field) != new.get(field) {
                causes.push(Cause::forbidden(
                    field,
                    "field is immutable when `immutable` is set",
                ));
            }
        }
        if new.get("immutable").and_then(Value::as_bool) != Some(true) {
            causes.push(Cause::forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
    }
    causes
}

/// The object without metadata and status: what `generation` tracks.
fn generation_view(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

/// Should an update from `old` to `new` bump `metadata.generation`?
pub fn generation_changes(old: &Value, new: &Value) -> bool {
    generation_view(old) != generation_view(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        let c = metadata(&json!({"metadata": {"name": "Bad"}}), NameRule::Subdomain);
        assert_eq!(c[0].field, "metadata.name");
        assert!(
            c[0].message
                .starts_with("Invalid value: \"Bad\": a lowercase RFC 1123 subdomain")
        );
        assert!(
            metadata(
                &json!({"metadata": {"name": "ok", "labels": {"app.kubernetes.io/name": "x"}}}),
                NameRule::Subdomain
            )
            .is_empty()
        );
        assert_eq!(
            metadata(
                &json!({"metadata": {"name": "ok", "labels": {"a": "-x"}}}),
                NameRule::Subdomain
            )
            .len(),
            1
        );
        assert!(
            metadata(
                &json!({"metadata": {"name": "system:x"}}),
                NameRule::PathSegment
            )
            .is_empty()
        );
        assert_eq!(
            metadata(&json!({"metadata": {"name": "a.b"}}), NameRule::Label).len(),
            1
        );
    }

    #[test]
    fn owner_references() {
        let ok = json!({"metadata": {"name": "a", "ownerReferences": [{"apiVersion": "v1", "kind": "K", "name": "o", "uid": "u", "controller": true}]}});
        assert!(metadata(&ok, NameRule::Subdomain).is_empty());
        let bad = json!({"metadata": {"name": "a", "ownerReferences": [{"apiVersion": "v1", "kind": "K", "name": "o"}]}});
        let causes = metadata(&bad, NameRule::Subdomain);
        assert_eq!(causes[0].field, "metadata.ownerReferences[0].uid");
        assert_eq!(causes[0].reason, "FieldValueRequired");
        let two = json!({"metadata": {"name": "a", "ownerReferences": [
            {"apiVersion": "v1", "kind": "K", "name": "o", "uid": "1", "controller": true},
            {"apiVersion": "v1", "kind": "K", "name": "p", "uid": "2", "controller": true}]}});
        assert_eq!(metadata(&two, NameRule::Subdomain).len(), 1);
    }

    #[test]
    fn secret_string_data_and_types() {
        let mut s =
            json!({"metadata": {"name": "s"}, "stringData": {"a": "hi"}, "data": {"b": "aGk="}});
        assert!(secret(&mut s).expect("decodes").is_empty());
        assert_eq!(s["data"], json!({"a": "aGk=", "b": "aGk="}));
        assert_eq!(s["type"], "Opaque");
        assert!(s.get("stringData").is_none());

        let mut bad = json!({"data": {"a": "!!!"}});
        assert_eq!(secret(&mut bad).unwrap_err().code(), 400);

        let mut tls = json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}});
        let c = secret(&mut tls).expect("decodes");
        assert_eq!(c, vec![Cause::required("data[tls.key]")]);

        let mut keys = json!({"data": {"bad key": "eA=="}});
        let c = secret(&mut keys).expect("decodes");
        assert_eq!(c[0].field, "data[bad key]");

        let mut dc = json!({"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "bm90IGpzb24="}});
        assert_eq!(secret(&mut dc).expect("decodes").len(), 1);
        let mut ba = json!({"type": "kubernetes.io/basic-auth", "stringData": {"password": "p"}});
        assert!(secret(&mut ba).expect("ok").is_empty());
        let mut ssh = json!({"type": "kubernetes.io/ssh-auth"});
        assert_eq!(
            secret(&mut ssh).expect("ok")[0].field,
            "data[ssh-privatekey]"
        );
    }

    #[test]
    fn immutable_and_type() {
        let old = json!({"immutable": true, "data": {"a": "eA=="}, "type": "Opaque"});
        let mut new = old.clone();
        new["data"]["a"] = json!("eQ==");
        let c = immutable_update(&old, &new, "Secret");
        assert_eq!(c[0].field, "data");
        assert!(immutable_update(&old, &old, "Secret").is_empty());
        let mut t = old.clone();
        t["type"] = json!("kubernetes.io/tls");
        assert_eq!(immutable_update(&old, &t, "Secret")[0].field, "type");
    }

    #[test]
    fn generation_ignores_metadata_and_status() {
        let a = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": 1}, "status": {"y": 1}});
        let mut b = a.clone();
        b["metadata"]["labels"]["a"] = json!("2");
        b["status"]["y"] = json!(2);
        assert!(!generation_changes(&a, &b));
        b["spec"]["x"] = json!(2);
        assert!(generation_changes(&a, &b));
    }

    #[test]
    fn secret_key_dot_dot_x_is_refused_like_the_api_server() {
        let mut s = json!({"metadata": {"name": "s"}, "stringData": {"..x": "v"}});
        let c = secret(&mut s).expect("decodes");
        assert_eq!(
            c,
            vec![Cause::invalid(
                "data[..x]",
                "..x",
                "must not start with '..'"
            )]
        );
    }

    #[test]
    fn configmap_keys() {
        assert!(configmap(&json!({"data": {"a.b": "x"}})).is_empty());
        assert_eq!(configmap(&json!({"data": {"a b": "x"}})).len(), 1);
        assert_eq!(
            configmap(&json!({"data": {"a": "x"}, "binaryData": {"a": "eA=="}})).len(),
            1
        );
    }
}
