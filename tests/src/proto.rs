//! Decoding of the Kubernetes protobuf request bodies kubectl sends.
//!
//! kubectl's typed commands (`create secret|configmap|namespace|serviceaccount|role|
//! rolebinding|…`, `create token`, `auth can-i`) send `application/vnd.kubernetes.protobuf`
//! and client-go does not retry as JSON on 415. So the server decodes the envelope
//! (`k8s\0` + runtime.Unknown) and the few message types those commands send, into the
//! same JSON the JSON path sees. Responses are always JSON, which client-go accepts.
//! Unknown fields are skipped; unknown kinds are 415.

use crate::error::{Error, Result};
use base64::Engine as _;
use serde_json::{Map, Value, json};

#[derive(Clone, Copy)]
enum F {
    Str,
    Int,
    Bool,
    Time,
    IntOrString,
    Msg(&'static [Field]),
    MapStr,
    MapBytes,
    RepStr,
    RepMsg(&'static [Field]),
}

type Field = (u64, &'static str, F);

const OWNER_REF: &[Field] = &[
    (1, "kind", F::Str),
    (3, "name", F::Str),
    (4, "uid", F::Str),
    (5, "apiVersion", F::Str),
    (6, "controller", F::Bool),
    (7, "blockOwnerDeletion", F::Bool),
];

const OBJECT_META: &[Field] = &[
    (1, "name", F::Str),
    (2, "generateName", F::Str),
    (3, "namespace", F::Str),
    (5, "uid", F::Str),
    (6, "resourceVersion", F::Str),
    (7, "generation", F::Int),
    (8, "creationTimestamp", F::Time),
    (11, "labels", F::MapStr),
    (12, "annotations", F::MapStr),
    (13, "ownerReferences", F::RepMsg(OWNER_REF)),
    (14, "finalizers", F::RepStr),
];

const SECRET: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "data", F::MapBytes),
    (3, "type", F::Str),
    (4, "stringData", F::MapStr),
    (5, "immutable", F::Bool),
];

const CONFIGMAP: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "data", F::MapStr),
    (3, "binaryData", F::MapBytes),
    (4, "immutable", F::Bool),
];

const NAMESPACE_SPEC: &[Field] = &[(1, "finalizers", F::RepStr)];
const NAMESPACE: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(NAMESPACE_SPEC)),
];

const OBJECT_REF: &[Field] = &[
    (1, "kind", F::Str),
    (2, "namespace", F::Str),
    (3, "name", F::Str),
    (4, "uid", F::Str),
    (5, "apiVersion", F::Str),
];
const LOCAL_REF: &[Field] = &[(1, "name", F::Str)];
const SERVICE_ACCOUNT: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "secrets", F::RepMsg(OBJECT_REF)),
    (3, "imagePullSecrets", F::RepMsg(LOCAL_REF)),
    (4, "automountServiceAccountToken", F::Bool),
];

const BOUND_REF: &[Field] = &[
    (1, "kind", F::Str),
    (2, "apiVersion", F::Str),
    (3, "name", F::Str),
    (4, "uid", F::Str),
];
const TOKEN_SPEC: &[Field] = &[
    (1, "audiences", F::RepStr),
    (3, "boundObjectRef", F::Msg(BOUND_REF)),
    (4, "expirationSeconds", F::Int),
];
const TOKEN_REQUEST: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(TOKEN_SPEC)),
];

const RESOURCE_ATTRS: &[Field] = &[
    (1, "namespace", F::Str),
    (2, "verb", F::Str),
    (3, "group", F::Str),
    (4, "version", F::Str),
    (5, "resource", F::Str),
    (6, "subresource", F::Str),
    (7, "name", F::Str),
];
const NON_RESOURCE_ATTRS: &[Field] = &[(1, "path", F::Str), (2, "verb", F::Str)];
const SSAR_SPEC: &[Field] = &[
    (1, "resourceAttributes", F::Msg(RESOURCE_ATTRS)),
    (2, "nonResourceAttributes", F::Msg(NON_RESOURCE_ATTRS)),
];
const SSAR: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(SSAR_SPEC)),
];

const SSRR_SPEC: &[Field] = &[(1, "namespace", F::Str)];
const SSRR: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(SSRR_SPEC)),
];
const SSR: &[Field] = &[(1, "metadata", F::Msg(OBJECT_META))];

const POLICY_RULE: &[Field] = &[
    (1, "verbs", F::RepStr),
    (2, "apiGroups", F::RepStr),
    (3, "resources", F::RepStr),
    (4, "resourceNames", F::RepStr),
    (5, "nonResourceURLs", F::RepStr),
];
const ROLE: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "rules", F::RepMsg(POLICY_RULE)),
];
const SUBJECT: &[Field] = &[
    (1, "kind", F::Str),
    (2, "apiGroup", F::Str),
    (3, "name", F::Str),
    (4, "namespace", F::Str),
];
const ROLE_REF: &[Field] = &[
    (1, "apiGroup", F::Str),
    (2, "kind", F::Str),
    (3, "name", F::Str),
];
const ROLE_BINDING: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "subjects", F::RepMsg(SUBJECT)),
    (3, "roleRef", F::Msg(ROLE_REF)),
];

const SERVICE_PORT: &[Field] = &[
    (1, "name", F::Str),
    (2, "protocol", F::Str),
    (3, "port", F::Int),
    (4, "targetPort", F::IntOrString),
    (5, "nodePort", F::Int),
];
const SERVICE_SPEC: &[Field] = &[
    (1, "ports", F::RepMsg(SERVICE_PORT)),
    (2, "selector", F::MapStr),
    (3, "clusterIP", F::Str),
    (4, "type", F::Str),
];
const SERVICE: &[Field] = &[
    (1, "metadata", F::Msg(OBJECT_META)),
    (2, "spec", F::Msg(SERVICE_SPEC)),
];

const TYPE_META: &[Field] = &[(1, "apiVersion", F::Str), (2, "kind", F::Str)];

fn schema_for(kind: &str) -> Option<&'static [Field]> {
    Some(match kind {
        "Secret" => SECRET,
        "ConfigMap" => CONFIGMAP,
        "Namespace" => NAMESPACE,
        "ServiceAccount" => SERVICE_ACCOUNT,
        "TokenRequest" => TOKEN_REQUEST,
        "SelfSubjectAccessReview" => SSAR,
        "SelfSubjectRulesReview" => SSRR,
        "SelfSubjectReview" => SSR,
        "Role" | "ClusterRole" => ROLE,
        "RoleBinding" | "ClusterRoleBinding" => ROLE_BINDING,
        "Service" => SERVICE,
        _ => return None,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn bad(why: &str) -> Error {
    Error::BadRequest(format!("invalid protobuf body: {why}"))
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| bad("truncated varint"))?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(bad("varint too long"))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = usize::try_from(self.varint()?).map_err(|_| bad("length overflow"))?;
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| bad("length overflow"))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| bad("truncated field"))?;
        self.pos = end;
        Ok(s)
    }

    fn skip(&mut self, wire: u64) -> Result<()> {
        match wire {
            0 => {
                self.varint()?;
            }
            1 => self.pos += 8,
            2 => {
                self.bytes()?;
            }
            5 => self.pos += 4,
            _ => return Err(bad("unsupported wire type")),
        }
        if self.pos > self.buf.len() {
            return Err(bad("truncated field"));
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

fn utf8(b: &[u8]) -> Result<String> {
    String::from_utf8(b.to_vec()).map_err(|_| bad("string is not UTF-8"))
}

fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value)> {
    let mut r = Reader { buf: b, pos: 0 };
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    while !r.done() {
        let key = r.varint()?;
        match (key >> 3, key & 7) {
            (1, 2) => k = utf8(r.bytes()?)?,
            (2, 2) => {
                let raw = r.bytes()?;
                v = if bytes_value {
                    json!(base64::engine::general_purpose::STANDARD.encode(raw))
                } else {
                    json!(utf8(raw)?)
                };
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok((k, v))
}

fn time(b: &[u8]) -> Result<Value> {
    let mut r = Reader { buf: b, pos: 0 };
    let mut secs = 0i64;
    while !r.done() {
        let key = r.varint()?;
        match (key >> 3, key & 7) {
            (1, 0) => secs = r.varint()? as i64,
            (_, w) => r.skip(w)?,
        }
    }
    if secs == 0 {
        return Ok(Value::Null);
    }
    Ok(jiff::Timestamp::from_second(secs)
        .map(|t| json!(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
        .unwrap_or(Value::Null))
}

/// intstr.IntOrString: type (0 int, 1 string), intVal, strVal.
fn int_or_string(b: &[u8]) -> Result<Value> {
    let mut r = Reader { buf: b, pos: 0 };
    let (mut ty, mut i, mut s) = (0u64, 0i64, String::new());
    while !r.done() {
        let key = r.varint()?;
        match (key >> 3, key & 7) {
            (1, 0) => ty = r.varint()?,
            (2, 0) => i = r.varint()? as i64,
            (3, 2) => s = utf8(r.bytes()?)?,
            (_, w) => r.skip(w)?,
        }
    }
    Ok(if ty == 1 { json!(s) } else { json!(i) })
}

fn message(b: &[u8], schema: &[Field]) -> Result<Value> {
    let mut r = Reader { buf: b, pos: 0 };
    let mut out = Map::new();
    while !r.done() {
        let key = r.varint()?;
        let (num, wire) = (key >> 3, key & 7);
        let Some((_, name, kind)) = schema.iter().find(|(n, _, _)| *n == num) else {
            r.skip(wire)?;
            continue;
        };
        let name = name.to_string();
        match (kind, wire) {
            // Go omits empty strings, zero integers and zero times in JSON; so do we.
            (F::Str, 2) => {
                let s = utf8(r.bytes()?)?;
                if !s.is_empty() {
                    out.insert(name, json!(s));
                }
            }
            (F::Int, 0) => {
                let n = r.varint()? as i64;
                if n != 0 {
                    out.insert(name, json!(n));
                }
            }
            (F::Bool, 0) => {
                out.insert(name, json!(r.varint()? != 0));
            }
            (F::Time, 2) => {
                let t = time(r.bytes()?)?;
                if !t.is_null() {
                    out.insert(name, t);
                }
            }
            (F::IntOrString, 2) => {
                out.insert(name, int_or_string(r.bytes()?)?);
            }
            (F::Msg(s), 2) => {
                out.insert(name, message(r.bytes()?, s)?);
            }
            (F::MapStr | F::MapBytes, 2) => {
                let (k, v) = map_entry(r.bytes()?, matches!(kind, F::MapBytes))?;
                let m = out.entry(name).or_insert_with(|| json!({}));
                if let Some(m) = m.as_object_mut() {
                    m.insert(k, v);
                }
            }
            (F::RepStr, 2) => {
                let s = utf8(r.bytes()?)?;
                push(&mut out, name, json!(s));
            }
            (F::RepMsg(s), 2) => {
                let v = message(r.bytes()?, s)?;
                push(&mut out, name, v);
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok(Value::Object(out))
}

fn push(out: &mut Map<String, Value>, name: String, v: Value) {
    let a = out.entry(name).or_insert_with(|| json!([]));
    if let Some(a) = a.as_array_mut() {
        a.push(v);
    }
}

/// Decode a `k8s\0`-prefixed protobuf body into the object's JSON form.
pub fn decode(body: &[u8]) -> Result<Value> {
    let rest = body
        .strip_prefix(b"k8s\x00")
        .ok_or_else(|| bad("missing the k8s protobuf envelope"))?;
    let mut r = Reader { buf: rest, pos: 0 };
    let mut type_meta = json!({});
    let mut raw: &[u8] = &[];
    while !r.done() {
        let key = r.varint()?;
        match (key >> 3, key & 7) {
            (1, 2) => type_meta = message(r.bytes()?, TYPE_META)?,
            (2, 2) => raw = r.bytes()?,
            (_, w) => r.skip(w)?,
        }
    }
    let kind = type_meta
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let schema = schema_for(&kind).ok_or_else(|| {
        Error::UnsupportedMediaType(format!(
            "protobuf bodies of kind {kind:?} are not supported by the test cluster; send JSON"
        ))
    })?;
    let mut obj = message(raw, schema)?;
    obj["apiVersion"] = type_meta.get("apiVersion").cloned().unwrap_or(Value::Null);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![((num << 3) | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_a_secret() {
        let mut meta = field(1, b"s1");
        meta.extend(field(3, b"default"));
        let mut entry = field(1, b"k");
        entry.extend(field(2, b"hi"));
        let mut secret = field(1, &meta);
        secret.extend(field(2, &entry));
        secret.extend(field(3, b"Opaque"));
        let mut tm = field(1, b"v1");
        tm.extend(field(2, b"Secret"));
        let mut body = b"k8s\x00".to_vec();
        body.extend(field(1, &tm));
        body.extend(field(2, &secret));
        let v = decode(&body).expect("decodes");
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1", "namespace": "default"},
                   "data": {"k": "aGk="}, "type": "Opaque"})
        );
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert_eq!(decode(b"nope").unwrap_err().code(), 400);
        assert_eq!(decode(b"k8s\x00\x0a\xff").unwrap_err().code(), 400);
        let mut tm = field(1, b"v1");
        tm.extend(field(2, b"Pod"));
        let mut body = b"k8s\x00".to_vec();
        body.extend(field(1, &tm));
        assert_eq!(decode(&body).unwrap_err().code(), 415);
    }
}
