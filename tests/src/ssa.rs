//! Server-side apply and `metadata.managedFields`, approximated.
//!
//! Field sets are sets of leaf paths written in the FieldsV1 notation (`f:data`,
//! `k:{"uid":"…"}`, `v:"finalizer"`). A leaf is a scalar, an empty map, an atomic list,
//! a set member or a keyed-list item's field. Lists are atomic unless the resolver says
//! otherwise (metadata.finalizers is a set, ownerReferences a map keyed by uid, CRD
//! schemas can declare `x-kubernetes-list-type`).
//!
//! Apply: conflicts are fields in the applied config whose live value differs and that
//! another manager owns (409 unless `force`, which takes them over); the config merges into
//! the live object; fields the manager applied before and omits now are removed unless
//! another manager still owns them. Update: the writer takes ownership of every leaf it
//! changed, other managers lose those leaves, and removed leaves leave every set.

use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// One path element in FieldsV1 notation.
pub type Element = String;
/// A path from the object root to a leaf.
pub type FieldPath = Vec<Element>;
/// A set of leaf paths.
pub type FieldSet = BTreeSet<FieldPath>;

/// How a list is merged and tracked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole, owned as one leaf.
    Atomic,
    /// Items are unique scalars.
    Set,
    /// Items are objects identified by these keys.
    Map(Vec<String>),
}

/// Tells the list type for a path of field names (list item keys omitted).
pub trait ListTypes {
    /// The list type of the list at `fields`.
    fn list_type(&self, fields: &[String]) -> ListType;
}

/// The list types every object shares (metadata), plus an optional CRD schema.
pub struct SchemaListTypes<'a> {
    /// A CRD's `openAPIV3Schema`, if any.
    pub schema: Option<&'a Value>,
}

impl ListTypes for SchemaListTypes<'_> {
    fn list_type(&self, fields: &[String]) -> ListType {
        match fields {
            [m, f] if m == "metadata" && f == "finalizers" => return ListType::Set,
            [m, f] if m == "metadata" && f == "ownerReferences" => {
                return ListType::Map(vec!["uid".into()]);
            }
            _ => {}
        }
        let Some(mut node) = self.schema else {
            // Built-in types: the same merge keys strategic merge patch uses.
            let Some(last) = fields.last() else {
                return ListType::Atomic;
            };
            return match crate::patch::merge_key(last, None) {
                crate::patch::ListStrategy::Replace => ListType::Atomic,
                crate::patch::ListStrategy::MergeSet => ListType::Set,
                crate::patch::ListStrategy::MergeKey(k) => {
                    let parent = fields.len().checked_sub(2).map(|i| fields[i].as_str());
                    // Service ports vs container ports.
                    if last == "ports" && parent != Some("spec") {
                        ListType::Map(vec!["containerPort".into()])
                    } else {
                        ListType::Map(vec![k.to_string()])
                    }
                }
            };
        };
        for f in fields {
            // Step through arrays' items on the way down.
            while node.get("type").and_then(Value::as_str) == Some("array") {
                match node.get("items") {
                    Some(i) => node = i,
                    None => return ListType::Atomic,
                }
            }
            match node.pointer(&format!(
                "/properties/{}",
                f.replace('~', "~0").replace('/', "~1")
            )) {
                Some(n) => node = n,
                None => return ListType::Atomic,
            }
        }
        match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(
                node.get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|k| k.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            _ => ListType::Atomic,
        }
    }
}

/// Metadata fields the server owns; never tracked.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "generateName",
];

fn field_names(path: &[Element]) -> Vec<String> {
    path.iter()
        .filter_map(|e| e.strip_prefix("f:").map(String::from))
        .collect()
}

/// Leaf paths of an object with their values.
pub fn leaves(obj: &Value, lt: &dyn ListTypes) -> BTreeMap<FieldPath, Value> {
    let mut out = BTreeMap::new();
    if let Value::Object(m) = obj {
        for (k, v) in m {
            if k == "apiVersion" || k == "kind" {
                continue;
            }
            if k == "metadata" {
                if let Value::Object(md) = v {
                    for (mk, mv) in md {
                        if SERVER_METADATA.contains(&mk.as_str()) {
                            continue;
                        }
                        walk(
                            mv,
                            vec!["f:metadata".into(), format!("f:{mk}")],
                            lt,
                            &mut out,
                        );
                    }
                }
                continue;
            }
            walk(v, vec![format!("f:{k}")], lt, &mut out);
        }
    }
    out
}

fn walk(v: &Value, path: FieldPath, lt: &dyn ListTypes, out: &mut BTreeMap<FieldPath, Value>) {
    match v {
        // Maps are structure, not values: an empty map owns nothing (so applying
        // `data: {}` never conflicts with the owners of data's keys).
        Value::Object(m) => {
            for (k, c) in m {
                let mut p = path.clone();
                p.push(format!("f:{k}"));
                walk(c, p, lt, out);
            }
        }
        Value::Array(items) => match lt.list_type(&field_names(&path)) {
            ListType::Atomic => {
                out.insert(path, v.clone());
            }
            ListType::Set => {
                for i in items {
                    let mut p = path.clone();
                    p.push(format!("v:{i}"));
                    out.insert(p, i.clone());
                }
            }
            ListType::Map(keys) => {
                for i in items {
                    let Some(key) = item_key(i, &keys) else {
                        // Not keyable: fall back to owning the list as a whole.
                        out.insert(path.clone(), v.clone());
                        return;
                    };
                    let mut p = path.clone();
                    p.push(key);
                    walk(i, p, lt, out);
                }
            }
        },
        _ => {
            out.insert(path, v.clone());
        }
    }
}

fn item_key(item: &Value, keys: &[String]) -> Option<Element> {
    let mut m = Map::new();
    for k in keys {
        m.insert(k.clone(), item.get(k)?.clone());
    }
    Some(format!("k:{}", Value::Object(m)))
}

fn find_item(items: &[Value], el: &str) -> Option<usize> {
    if let Some(key) = el.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).ok()?;
        items
            .iter()
            .position(|i| key.iter().all(|(k, v)| i.get(k) == Some(v)))
    } else if let Some(val) = el.strip_prefix("v:") {
        let val: Value = serde_json::from_str(val).ok()?;
        items.iter().position(|i| *i == val)
    } else {
        None
    }
}

/// The value at a path, if present.
pub fn get_at<'a>(obj: &'a Value, path: &[Element]) -> Option<&'a Value> {
    let mut cur = obj;
    for el in path {
        cur = if let Some(f) = el.strip_prefix("f:") {
            cur.get(f)?
        } else {
            let items = cur.as_array()?;
            &items[find_item(items, el)?]
        };
    }
    Some(cur)
}

/// Remove the value at a path (a map key, a list item or a set member).
pub fn remove_at(obj: &mut Value, path: &[Element]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for el in parents {
        let next = if let Some(f) = el.strip_prefix("f:") {
            cur.get_mut(f)
        } else {
            match cur.as_array_mut() {
                Some(items) => match find_item(items, el) {
                    Some(i) => items.get_mut(i),
                    None => None,
                },
                None => None,
            }
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(items) = cur.as_array_mut()
        && let Some(i) = find_item(items, last)
    {
        items.remove(i);
    }
}

/// Merge an applied configuration into the live object.
pub fn merge_applied(live: &Value, config: &Value, lt: &dyn ListTypes) -> Value {
    merge_at(live, config, &mut vec![], lt)
}

fn merge_at(live: &Value, config: &Value, fields: &mut Vec<String>, lt: &dyn ListTypes) -> Value {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) => {
            let mut out = l.clone();
            for (k, v) in c {
                fields.push(k.clone());
                let merged = match l.get(k) {
                    Some(lv) => merge_at(lv, v, fields, lt),
                    None => v.clone(),
                };
                fields.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => match lt.list_type(fields) {
            ListType::Atomic => config.clone(),
            ListType::Set => {
                let mut out = l.clone();
                for i in c {
                    if !out.contains(i) {
                        out.push(i.clone());
                    }
                }
                Value::Array(out)
            }
            ListType::Map(keys) => {
                let mut out = l.clone();
                for i in c {
                    match item_key(i, &keys).and_then(|k| find_item(&out, &k)) {
                        Some(pos) => out[pos] = merge_at(&out[pos], i, fields, lt),
                        None => out.push(i.clone()),
                    }
                }
                Value::Array(out)
            }
        },
        _ => config.clone(),
    }
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Field manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// apiVersion the manager used.
    pub api_version: String,
    /// Last time its set changed.
    pub time: String,
    /// `status` or empty.
    pub subresource: String,
    /// Owned leaves.
    pub fields: FieldSet,
}

impl Entry {
    fn same_manager(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    fn owns(&self, path: &FieldPath) -> bool {
        // Owning a prefix (an atomic list, a whole map) owns the leaf too.
        self.fields
            .iter()
            .any(|f| path.starts_with(f) || f.starts_with(path))
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        let mut e = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields_v1(&self.fields),
        });
        if !self.subresource.is_empty() {
            e["subresource"] = json!(self.subresource);
        }
        e
    }
}

/// Encode a field set as a FieldsV1 tree.
pub fn fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for el in path {
            let next = cur
                .entry(el.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            match next {
                Value::Object(m) => cur = m,
                _ => break,
            }
        }
    }
    Value::Object(root)
}

/// Decode a FieldsV1 tree: a node without children, or with a `.` child, is owned.
pub fn parse_fields_v1(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    fn rec(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
        let Value::Object(m) = v else { return };
        if (m.is_empty() || m.contains_key(".")) && !path.is_empty() {
            out.insert(path.clone());
        }
        for (k, c) in m {
            if k == "." {
                continue;
            }
            path.push(k.clone());
            rec(c, path, out);
            path.pop();
        }
    }
    rec(v, &mut vec![], &mut out);
    out
}

/// Read the entries stored in an object.
pub fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return vec![];
    };
    list.iter()
        .map(|e| {
            let s = |k: &str| {
                e.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            Entry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: s("subresource"),
                fields: e.get("fieldsV1").map(parse_fields_v1).unwrap_or_default(),
            }
        })
        .collect()
}

/// Store entries in an object (removed when empty, as the API server does).
pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if entries.is_empty() {
        md.remove("managedFields");
    } else {
        md.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::to_json).collect()),
        );
    }
}

/// Identity of the writer for managedFields bookkeeping.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    /// Field manager.
    pub manager: &'a str,
    /// `status` or empty.
    pub subresource: &'a str,
    /// apiVersion used.
    pub api_version: &'a str,
    /// Timestamp for changed entries.
    pub now: &'a str,
}

fn set_entry(entries: &mut Vec<Entry>, w: &Writer<'_>, operation: &str, fields: FieldSet) {
    let pos = entries
        .iter()
        .position(|e| e.same_manager(w.manager, operation, w.subresource));
    match pos {
        Some(i) => {
            if entries[i].fields != fields {
                entries[i].fields = fields;
                entries[i].time = w.now.to_string();
                entries[i].api_version = w.api_version.to_string();
            }
        }
        None => entries.push(Entry {
            manager: w.manager.to_string(),
            operation: operation.to_string(),
            api_version: w.api_version.to_string(),
            time: w.now.to_string(),
            subresource: w.subresource.to_string(),
            fields,
        }),
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// Record an Update (create, PUT, non-apply PATCH) from `old` to `new` by a writer.
pub fn record_update(old: Option<&Value>, new: &mut Value, w: &Writer<'_>, lt: &dyn ListTypes) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let before = old.map(|o| leaves(o, lt)).unwrap_or_default();
    let after = leaves(new, lt);
    let changed: FieldSet = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(v))
        .map(|(p, _)| p.clone())
        .collect();
    let removed: FieldSet = before
        .keys()
        .filter(|p| !after.contains_key(*p))
        .cloned()
        .collect();
    if changed.is_empty() && removed.is_empty() {
        write_entries(new, &entries);
        return;
    }
    for e in entries.iter_mut() {
        let before_len = e.fields.len();
        e.fields
            .retain(|f| !changed.contains(f) && !removed.contains(f));
        if e.fields.len() != before_len {
            e.time = w.now.to_string();
        }
    }
    let mut mine = entries
        .iter()
        .find(|e| e.same_manager(w.manager, "Update", w.subresource))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    mine.extend(changed);
    set_entry(&mut entries, w, "Update", mine);
    write_entries(new, &entries);
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager.
    pub manager: String,
    /// The other manager's apiVersion.
    pub api_version: String,
    /// Field path as `.data.key`.
    pub field: String,
}

/// A path in the `.data.key` notation of conflict messages.
pub fn dotted(path: &[Element]) -> String {
    let mut s = String::new();
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            s.push_str(&format!("[{k}]"));
        } else if let Some(v) = el.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

/// Server-side apply of `config` onto `live` (an empty object when creating).
/// Returns the new object with managedFields set, or the conflicts.
pub fn apply(
    live: &Value,
    config: &Value,
    w: &Writer<'_>,
    force: bool,
    lt: &dyn ListTypes,
) -> Result<Value, Vec<Conflict>> {
    let mut entries = read_entries(live);
    let applied = leaves(config, lt);
    let mut conflicts = vec![];
    let mut taken: Vec<FieldPath> = vec![];
    for (path, value) in &applied {
        // Absent fields cannot conflict; equal values are shared ownership.
        let differs = get_at(live, path).is_some_and(|v| v != value);
        if !differs {
            continue;
        }
        for e in &entries {
            if e.same_manager(w.manager, "Apply", w.subresource) || !e.owns(path) {
                continue;
            }
            conflicts.push(Conflict {
                manager: e.manager.clone(),
                api_version: e.api_version.clone(),
                field: dotted(path),
            });
            taken.push(path.clone());
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    for e in entries.iter_mut() {
        if e.same_manager(w.manager, "Apply", w.subresource) {
            continue;
        }
        let n = e.fields.len();
        e.fields
            .retain(|f| !taken.iter().any(|t| f.starts_with(t) || t.starts_with(f)));
        if n != e.fields.len() {
            e.time = w.now.to_string();
        }
    }
    let mut out = merge_applied(live, config, lt);
    let new_set: FieldSet = applied.keys().cloned().collect();
    let previous: FieldSet = entries
        .iter()
        .find(|e| e.same_manager(w.manager, "Apply", w.subresource))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    set_entry(&mut entries, w, "Apply", new_set.clone());
    for path in previous.difference(&new_set) {
        let owned_elsewhere = entries.iter().any(|e| e.owns(path));
        if owned_elsewhere {
            continue;
        }
        remove_at(&mut out, path);
        // A keyed-list item nobody owns any field of goes too.
        for cut in (1..path.len()).rev() {
            if path[cut].starts_with("k:") {
                let item = &path[..=cut];
                if !entries
                    .iter()
                    .any(|e| e.fields.iter().any(|f| f.starts_with(item)))
                {
                    remove_at(&mut out, item);
                }
            }
        }
    }
    write_entries(&mut out, &entries);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: SchemaListTypes<'static> = SchemaListTypes { schema: None };

    fn w(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            subresource: "",
            api_version: "v1",
            now: "2026-01-01T00:00:00Z",
        }
    }

    fn secret(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "d"}, "data": data})
    }

    #[test]
    fn leaves_and_fieldsv1_round_trip() {
        let o = json!({"metadata": {"name": "x", "labels": {"a": "1"}, "finalizers": ["f1"],
            "ownerReferences": [{"uid": "u1", "name": "o", "kind": "K", "apiVersion": "v1"}]},
            "data": {"k": "v"}, "spec": {"list": [1, 2], "empty": {}}});
        let l = leaves(&o, &NONE);
        let set: FieldSet = l.keys().cloned().collect();
        assert!(set.contains(&vec![
            "f:metadata".to_string(),
            "f:finalizers".into(),
            "v:\"f1\"".into()
        ]));
        assert!(set.contains(&vec![
            "f:metadata".to_string(),
            "f:ownerReferences".into(),
            "k:{\"uid\":\"u1\"}".into(),
            "f:kind".into()
        ]));
        assert!(set.contains(&vec!["f:spec".to_string(), "f:list".into()]));
        assert!(!set.iter().any(|p| p.contains(&"f:empty".to_string())));
        assert!(!set.contains(&vec!["f:metadata".to_string(), "f:name".into()]));
        assert_eq!(parse_fields_v1(&fields_v1(&set)), set);
    }

    #[test]
    fn apply_removes_fields_the_manager_dropped() {
        let live = secret(json!({}));
        let a1 = apply(
            &live,
            &secret(json!({"a": "MQ==", "b": "Mg=="})),
            &w("ctl"),
            false,
            &NONE,
        )
        .expect("no conflict");
        assert_eq!(a1["data"], json!({"a": "MQ==", "b": "Mg=="}));
        let a2 = apply(&a1, &secret(json!({"a": "MQ=="})), &w("ctl"), false, &NONE).expect("ok");
        assert_eq!(a2["data"], json!({"a": "MQ=="}));
        let entries = read_entries(&a2);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].operation, "Apply");
    }

    #[test]
    fn apply_keeps_fields_another_manager_owns_and_conflicts() {
        let live = secret(json!({}));
        let a = apply(
            &live,
            &secret(json!({"a": "MQ=="})),
            &w("one"),
            false,
            &NONE,
        )
        .expect("ok");
        // Same value: shared ownership, no conflict.
        let b = apply(
            &a,
            &secret(json!({"a": "MQ==", "z": "eg=="})),
            &w("two"),
            false,
            &NONE,
        )
        .expect("shared");
        // Different value: conflict.
        let err = apply(&b, &secret(json!({"a": "Mw=="})), &w("two"), false, &NONE).unwrap_err();
        assert_eq!(err[0].manager, "one");
        assert_eq!(err[0].field, ".data.a");
        // Manager one drops `a`, two still owns it: it stays.
        let c = apply(&b, &secret(json!({})), &w("one"), false, &NONE).expect("ok");
        assert_eq!(c["data"]["a"], "MQ==");
        // Force takes ownership away.
        let d = apply(&b, &secret(json!({"a": "Mw=="})), &w("three"), true, &NONE).expect("forced");
        assert_eq!(d["data"]["a"], "Mw==");
        let e = read_entries(&d);
        assert!(
            e.iter()
                .all(|e| e.manager == "three" || !e.owns(&vec!["f:data".into(), "f:a".into()]))
        );
    }

    #[test]
    fn update_transfers_ownership() {
        let live = apply(
            &secret(json!({})),
            &secret(json!({"a": "MQ=="})),
            &w("ssa"),
            false,
            &NONE,
        )
        .expect("ok");
        let mut new = live.clone();
        new["data"]["a"] = json!("Mg==");
        record_update(Some(&live), &mut new, &w("kubectl-edit"), &NONE);
        let e = read_entries(&new);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].manager, "kubectl-edit");
        // The apply manager no longer owns `a`, so applying without it keeps it.
        let after = apply(&new, &secret(json!({})), &w("ssa"), false, &NONE).expect("ok");
        assert_eq!(after["data"]["a"], "Mg==");
    }

    #[test]
    fn keyed_list_items_removed_when_unowned() {
        let o = |refs: Value| json!({"metadata": {"name": "x", "ownerReferences": refs}});
        let r1 = json!({"uid": "1", "name": "a"});
        let r2 = json!({"uid": "2", "name": "b"});
        let a = apply(&o(json!([])), &o(json!([r1, r2])), &w("m"), false, &NONE).expect("ok");
        let b = apply(&a, &o(json!([r1])), &w("m"), false, &NONE).expect("ok");
        assert_eq!(b["metadata"]["ownerReferences"], json!([r1]));
    }

    #[test]
    fn builtin_list_types_follow_merge_keys() {
        let f = |p: &[&str]| NONE.list_type(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            f(&["spec", "template", "spec", "containers"]),
            ListType::Map(vec!["name".into()])
        );
        assert_eq!(f(&["spec", "ports"]), ListType::Map(vec!["port".into()]));
        assert_eq!(
            f(&["spec", "template", "spec", "containers", "ports"]),
            ListType::Map(vec!["containerPort".into()])
        );
        assert_eq!(f(&["spec", "args"]), ListType::Atomic);
    }

    #[test]
    fn crd_schema_list_types() {
        let schema = json!({"type": "object", "properties": {"status": {"type": "object", "properties": {
            "conditions": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                "items": {"type": "object"}}}}}});
        let lt = SchemaListTypes {
            schema: Some(&schema),
        };
        assert_eq!(
            lt.list_type(&["status".into(), "conditions".into()]),
            ListType::Map(vec!["type".into()])
        );
        assert_eq!(lt.list_type(&["spec".into(), "x".into()]), ListType::Atomic);
    }
}
