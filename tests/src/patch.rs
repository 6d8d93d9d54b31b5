//! Patch algorithms: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and an
//! approximation of Kubernetes' strategic merge patch.
//!
//! Strategic merge patch is approximated without OpenAPI: maps merge, `null` deletes,
//! lists named in [`merge_key`] merge by that key (containers/env/volumes by `name`,
//! ownerReferences by `uid`, conditions by `type`, ports by `containerPort`/`port`),
//! `finalizers` merge as a set, every other list is replaced. The directives kubectl
//! sends (`$patch: replace|delete|merge`, `$retainKeys`, `$setElementOrder/…`,
//! `$deleteFromPrimitiveList/…`) are honoured or, for ordering, ignored.

use crate::error::{Error, Result};
use serde_json::{Map, Value};

/// Apply an RFC 6902 JSON patch.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value> {
    let ops = patch
        .as_array()
        .ok_or_else(|| Error::BadRequest("json patch must be an array of operations".into()))?;
    let mut doc = doc.clone();
    for op in ops {
        let name = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::BadRequest("json patch operation without \"op\"".into()))?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::BadRequest(format!("json patch {name} without \"path\"")))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| Error::BadRequest(format!("json patch {name} without \"value\"")))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::BadRequest(format!("json patch {name} without \"from\"")))
        };
        match name {
            "add" => add(&mut doc, path, value()?)?,
            "remove" => {
                remove(&mut doc, path)?;
            }
            "replace" => {
                remove(&mut doc, path)?;
                add(&mut doc, path, value()?)?;
            }
            "move" => {
                let v = remove(&mut doc, from()?)?;
                add(&mut doc, path, v)?;
            }
            "copy" => {
                let v = get(&doc, from()?)?.clone();
                add(&mut doc, path, v)?;
            }
            "test" => {
                let expected = value()?;
                // As in the API server's JSON patch library, a missing path tests equal to
                // null (kube's finalizer helper relies on it).
                let actual = match get(&doc, path) {
                    Ok(v) => v.clone(),
                    Err(_) if expected.is_null() => Value::Null,
                    Err(e) => return Err(e),
                };
                if actual != expected {
                    return Err(Error::Unprocessable(format!(
                        "the server rejected our request due to an error in our request: testing value {path} failed"
                    )));
                }
            }
            other => {
                return Err(Error::BadRequest(format!(
                    "unexpected json patch operation {other:?}"
                )));
            }
        }
    }
    Ok(doc)
}

fn tokens(path: &str) -> Result<Vec<String>> {
    if path.is_empty() {
        return Ok(vec![]);
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| Error::BadRequest(format!("invalid json pointer {path:?}")))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn missing(path: &str) -> Error {
    Error::Unprocessable(format!(
        "the server rejected our request due to an error in our request: path {path:?} does not exist"
    ))
}

fn get<'a>(doc: &'a Value, path: &str) -> Result<&'a Value> {
    let mut cur = doc;
    for t in tokens(path)? {
        cur = match cur {
            Value::Object(m) => m.get(&t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        }
        .ok_or_else(|| missing(path))?;
    }
    Ok(cur)
}

fn parent<'a>(doc: &'a mut Value, path: &str) -> Result<(&'a mut Value, String)> {
    let mut toks = tokens(path)?;
    let last = toks
        .pop()
        .ok_or_else(|| Error::Unprocessable("cannot operate on the document root".into()))?;
    let mut cur = doc;
    for t in toks {
        cur = match cur {
            Value::Object(m) => m.get_mut(&t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| missing(path))?;
    }
    Ok((cur, last))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<()> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (p, last) = parent(doc, path)?;
    match p {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            let idx = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>().map_err(|_| missing(path))?
            };
            if idx > a.len() {
                return Err(missing(path));
            }
            a.insert(idx, value);
            Ok(())
        }
        _ => Err(missing(path)),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value> {
    let (p, last) = parent(doc, path)?;
    match p {
        Value::Object(m) => m.remove(&last).ok_or_else(|| missing(path)),
        Value::Array(a) => {
            let idx = last.parse::<usize>().map_err(|_| missing(path))?;
            if idx >= a.len() {
                return Err(missing(path));
            }
            Ok(a.remove(idx))
        }
        _ => Err(missing(path)),
    }
}

/// Apply an RFC 7386 JSON merge patch.
pub fn merge_patch(doc: &Value, patch: &Value) -> Value {
    match patch {
        Value::Object(pm) => {
            let mut out = match doc {
                Value::Object(m) => m.clone(),
                _ => Map::new(),
            };
            for (k, v) in pm {
                if v.is_null() {
                    out.remove(k);
                } else {
                    let merged = merge_patch(out.get(k).unwrap_or(&Value::Null), v);
                    out.insert(k.clone(), merged);
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// How a list merges in a strategic merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// Replace the whole list.
    Replace,
    /// Merge items by this key.
    MergeKey(&'static str),
    /// Merge primitives as a set.
    MergeSet,
}

/// The approximate patch strategy of a list field, by field name.
pub fn merge_key(field: &str, sample: Option<&Value>) -> ListStrategy {
    match field {
        "finalizers" => ListStrategy::MergeSet,
        "ownerReferences" => ListStrategy::MergeKey("uid"),
        "conditions" => ListStrategy::MergeKey("type"),
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "secrets" => ListStrategy::MergeKey("name"),
        "volumeMounts" => ListStrategy::MergeKey("mountPath"),
        "ports" => {
            if sample.and_then(|s| s.get("containerPort")).is_some() {
                ListStrategy::MergeKey("containerPort")
            } else {
                ListStrategy::MergeKey("port")
            }
        }
        _ => ListStrategy::Replace,
    }
}

/// Apply a strategic merge patch (see the module docs for the approximation).
pub fn strategic_merge_patch(doc: &Value, patch: &Value) -> Result<Value> {
    match patch {
        Value::Object(_) => smp_map(doc, patch),
        _ => Err(Error::BadRequest(
            "strategic merge patch must be a JSON object".into(),
        )),
    }
}

fn smp_map(doc: &Value, patch: &Value) -> Result<Value> {
    let Value::Object(pm) = patch else {
        return Ok(patch.clone());
    };
    match pm.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut m = pm.clone();
            m.remove("$patch");
            return Ok(Value::Object(m));
        }
        Some("delete") => return Ok(Value::Null),
        _ => {}
    }
    let mut out = match doc {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    if let Some(Value::Array(keep)) = pm.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in pm {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Value::Array(del)) = (out.get_mut(field), v) {
                cur.retain(|x| !del.contains(x));
            }
            continue;
        }
        if v.is_null() {
            out.remove(k);
            continue;
        }
        let cur = out.get(k).cloned().unwrap_or(Value::Null);
        let merged = match v {
            Value::Object(_) => smp_map(&cur, v)?,
            Value::Array(items) => smp_list(k, &cur, items)?,
            _ => v.clone(),
        };
        if merged.is_null() {
            out.remove(k);
        } else {
            out.insert(k.clone(), merged);
        }
    }
    Ok(Value::Object(out))
}

fn smp_list(field: &str, cur: &Value, items: &[Value]) -> Result<Value> {
    let current: Vec<Value> = cur.as_array().cloned().unwrap_or_default();
    // A `{"$patch": "replace"}` item replaces the list with the other items.
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(Value::Array(
            items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .cloned()
                .collect(),
        ));
    }
    match merge_key(field, items.first().or(current.first())) {
        ListStrategy::Replace => Ok(Value::Array(items.to_vec())),
        ListStrategy::MergeSet => {
            let mut out = current;
            for i in items {
                if !out.contains(i) {
                    out.push(i.clone());
                }
            }
            Ok(Value::Array(out))
        }
        ListStrategy::MergeKey(key) => {
            let mut out = current;
            for item in items {
                let Some(kv) = item.get(key) else {
                    return Err(Error::BadRequest(format!(
                        "map: {item} does not contain declared merge key: {key}"
                    )));
                };
                let pos = out.iter().position(|o| o.get(key) == Some(kv));
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match (pos, delete) {
                    (Some(p), true) => {
                        out.remove(p);
                    }
                    (None, true) => {}
                    (Some(p), false) => {
                        out[p] = smp_map(&out[p], item)?;
                    }
                    (None, false) => {
                        let fresh = smp_map(&Value::Null, item)?;
                        out.push(fresh);
                    }
                }
            }
            Ok(Value::Array(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_ops() {
        let doc = json!({"a": {"b": 1}, "l": [1, 2]});
        let p = json!([
            {"op": "test", "path": "/a/b", "value": 1},
            {"op": "add", "path": "/a/c", "value": 2},
            {"op": "add", "path": "/l/-", "value": 3},
            {"op": "add", "path": "/l/0", "value": 0},
            {"op": "replace", "path": "/a/b", "value": 5},
            {"op": "copy", "from": "/a/b", "path": "/x"},
            {"op": "move", "from": "/a/c", "path": "/y"},
            {"op": "remove", "path": "/l/1"},
            {"op": "add", "path": "/k~1e~0y", "value": true}
        ]);
        let out = json_patch(&doc, &p).expect("applies");
        assert_eq!(
            out,
            json!({"a": {"b": 5}, "l": [0, 2, 3], "x": 5, "y": 2, "k/e~y": true})
        );
    }

    #[test]
    fn json_patch_test_missing_is_null() {
        let doc = json!({"metadata": {"name": "x"}});
        let p = json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                       {"op": "add", "path": "/metadata/finalizers", "value": ["a/b"]}]);
        let out = json_patch(&doc, &p).expect("applies");
        assert_eq!(out["metadata"]["finalizers"], json!(["a/b"]));
        assert!(
            json_patch(&out, &p).is_err(),
            "test fails once finalizers exist"
        );
    }

    #[test]
    fn json_patch_failures() {
        let doc = json!({"a": 1});
        let e = json_patch(&doc, &json!([{"op": "test", "path": "/a", "value": 2}])).unwrap_err();
        assert_eq!(e.code(), 422);
        let e = json_patch(&doc, &json!([{"op": "remove", "path": "/zz"}])).unwrap_err();
        assert_eq!(e.code(), 422);
        let e = json_patch(&doc, &json!({"op": "add"})).unwrap_err();
        assert_eq!(e.code(), 400);
        let e = json_patch(&doc, &json!([{"op": "frob", "path": "/a"}])).unwrap_err();
        assert_eq!(e.code(), 400);
    }

    #[test]
    fn merge_patch_rfc7386_examples() {
        let doc = json!({"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"}, "tags": ["example", "sample"], "content": "x"});
        let patch = json!({"title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": {"familyName": null}, "tags": ["example"]});
        assert_eq!(
            merge_patch(&doc, &patch),
            json!({"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"], "content": "x", "phoneNumber": "+01-123-456-7890"})
        );
        assert_eq!(merge_patch(&json!({"a": 1}), &json!(null)), json!(null));
    }

    #[test]
    fn smp_merges_keyed_lists_and_sets() {
        let doc = json!({"metadata": {"finalizers": ["a"], "ownerReferences": [{"uid": "1", "name": "x"}]},
                         "spec": {"containers": [{"name": "c", "image": "old"}], "args": ["1"]}});
        let patch = json!({"metadata": {"finalizers": ["b"], "ownerReferences": [{"uid": "2", "name": "y"}]},
                           "spec": {"containers": [{"name": "c", "image": "new"}, {"name": "d", "image": "i"}],
                                    "$setElementOrder/containers": [{"name": "c"}, {"name": "d"}],
                                    "args": ["2"]}});
        let out = strategic_merge_patch(&doc, &patch).expect("applies");
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(
            out["metadata"]["ownerReferences"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "c", "image": "new"}, {"name": "d", "image": "i"}])
        );
        assert_eq!(out["spec"]["args"], json!(["2"]));
        assert!(out["spec"].get("$setElementOrder/containers").is_none());
    }

    #[test]
    fn smp_directives() {
        let doc = json!({"data": {"a": "1", "b": "2"}, "spec": {"containers": [{"name": "c"}, {"name": "d"}]},
                         "metadata": {"finalizers": ["x", "y"]}});
        let patch = json!({"data": {"a": null}, "spec": {"containers": [{"name": "c", "$patch": "delete"}]},
                           "metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}});
        let out = strategic_merge_patch(&doc, &patch).expect("applies");
        assert_eq!(out["data"], json!({"b": "2"}));
        assert_eq!(out["spec"]["containers"], json!([{"name": "d"}]));
        assert_eq!(out["metadata"]["finalizers"], json!(["y"]));
        let out = strategic_merge_patch(&doc, &json!({"data": {"$patch": "replace", "z": "9"}}))
            .expect("ok");
        assert_eq!(out["data"], json!({"z": "9"}));
    }
}
