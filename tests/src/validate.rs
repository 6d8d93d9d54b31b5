//! Object validation (names, labels, Secrets, ConfigMaps) and the generation rule.

use crate::error::{Cause, Error, Result};
use base64::Engine as _;
use serde_json::{Map, Value};

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// Is `s` a DNS-1123 label?
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Is `s` a DNS-1123 subdomain?
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Is `s` a valid Secret/ConfigMap key?
pub fn is_config_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn qualified_name_ok(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && name
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphanumeric)
        && name
            .as_bytes()
            .last()
            .is_some_and(u8::is_ascii_alphanumeric);
    name_ok && prefix.is_none_or(is_dns_subdomain)
}

fn label_value_ok(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && v.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
            && v.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric))
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
            NameRule::Label if !is_dns_label(name) => {
                causes.push(Cause::invalid("metadata.name", name, LABEL_MSG));
            }
            NameRule::Subdomain if !is_dns_subdomain(name) => {
                causes.push(Cause::invalid("metadata.name", name, SUBDOMAIN_MSG));
            }
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
                for (k, v) in m {
                    if !qualified_name_ok(k) {
                        causes.push(Cause::invalid(
                            "metadata.labels",
                            k,
                            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                        ));
                    }
                    match v.as_str() {
                        Some(s) if label_value_ok(s) => {}
                        _ => causes.push(Cause::invalid(
                            "metadata.labels",
                            &v.to_string(),
                            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                        )),
                    }
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
        let size: usize = ann
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if size > 256 * 1024 {
            causes.push(Cause::new(
                "FieldValueTooLong",
                "metadata.annotations",
                "Too long: must have at most 262144 bytes",
            ));
        }
        for (k, v) in ann {
            if !qualified_name_ok(k) {
                causes.push(Cause::invalid(
                    "metadata.annotations",
                    k,
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
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
    let mut total = 0usize;
    for (k, v) in &data {
        let decoded = match v {
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
        total += decoded.len();
    }
    if let Some(sd) = m.remove("stringData") {
        match sd {
            Value::Object(sd) => {
                for (k, v) in sd {
                    let s = v.as_str().unwrap_or_default();
                    total += s.len();
                    data.insert(k, Value::String(engine.encode(s)));
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
    for k in data.keys() {
        if !is_config_key(k) {
            causes.push(Cause::invalid(format!("data[{k}]"), k, KEY_MSG));
        }
    }
    if total > 1024 * 1024 {
        causes.push(Cause::new(
            "FieldValueTooLong",
            "data",
            "Too long: must have at most 1048576 bytes",
        ));
    }
    let ty = m
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("Opaque")
        .to_string();
    let has = |k: &str| data.contains_key(k);
    match ty.as_str() {
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    causes.push(Cause::required(format!("data[{k}]")));
                }
            }
        }
        "kubernetes.io/dockerconfigjson" => {
            match data.get(".dockerconfigjson").and_then(Value::as_str) {
                None => causes.push(Cause::required("data[.dockerconfigjson]")),
                Some(b) => {
                    let ok = engine
                        .decode(b)
                        .ok()
                        .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
                        .is_some();
                    if !ok {
                        causes.push(Cause::invalid(
                            "data[.dockerconfigjson]",
                            "<secret contents redacted>",
                            "invalid character in JSON",
                        ));
                    }
                }
            }
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => {
            causes.push(Cause::required("data[.dockercfg]"));
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            causes.push(Cause::required("data[username]"));
        }
        "kubernetes.io/ssh-auth" if !has("ssh-privatekey") => {
            causes.push(Cause::required("data[ssh-privatekey]"));
        }
        "kubernetes.io/service-account-token" => {
            let named = m
                .get("metadata")
                .and_then(|md| md.pointer("/annotations/kubernetes.io~1service-account.name"))
                .is_some();
            if !named {
                causes.push(Cause::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                ));
            }
        }
        _ => {}
    }
    if !data.is_empty() {
        m.insert("data".into(), Value::Object(data));
    }
    Ok(causes)
}

/// Validate a ConfigMap's keys (data and binaryData share one key space).
pub fn configmap(obj: &Value) -> Vec<Cause> {
    let mut causes = vec![];
    let mut seen = std::collections::BTreeSet::new();
    for field in ["data", "binaryData"] {
        if let Some(m) = obj.get(field).and_then(Value::as_object) {
            for (k, v) in m {
                if !is_config_key(k) {
                    causes.push(Cause::invalid(format!("{field}[{k}]"), k, KEY_MSG));
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

/// Update rules for Secrets and ConfigMaps: `immutable` freezes data, type never changes.
pub fn immutable_update(old: &Value, new: &Value, kind: &str) -> Vec<Cause> {
    let mut causes = vec![];
    if old.get("immutable").and_then(Value::as_bool) == Some(true) {
        for field in ["data", "binaryData"] {
            if old.get(field) != new.get(field) && !(kind == "Secret" && field == "binaryData") {
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
    if kind == "Secret" && old.get("type") != new.get("type") {
        let t = new.get("type").and_then(Value::as_str).unwrap_or_default();
        causes.push(Cause::invalid("type", t, "field is immutable"));
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
        assert!(is_dns_subdomain("a.b-c.d"));
        assert!(!is_dns_subdomain("Bad_Name"));
        assert!(!is_dns_subdomain("-a"));
        assert!(!is_dns_subdomain(&"a".repeat(254)));
        assert!(is_dns_label("kage-system"));
        assert!(!is_dns_label("a.b"));
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
    fn configmap_keys() {
        assert!(configmap(&json!({"data": {"a.b": "x"}})).is_empty());
        assert_eq!(configmap(&json!({"data": {"a b": "x"}})).len(), 1);
        assert_eq!(
            configmap(&json!({"data": {"a": "x"}, "binaryData": {"a": "eA=="}})).len(),
            1
        );
    }
}
