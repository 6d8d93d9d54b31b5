//! Structural-schema handling of custom resources, as the real server does on write:
//! prune unknown fields (unless `x-kubernetes-preserve-unknown-fields`), drop nulls of
//! non-nullable fields, apply `default`s, then validate `type`, `required`, `enum`,
//! `minimum`/`maximum`, `minLength`/`maxLength`, `minItems`/`maxItems` and `pattern`.
//! Not covered: CEL rules (`x-kubernetes-validations`), `format`, `oneOf`/`anyOf`/`not`,
//! list-type uniqueness.

use crate::error::Cause;
use serde_json::{Value, json};

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn preserves(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

/// Prune, drop nulls and default, in place. The root's apiVersion/kind/metadata are kept.
pub fn prune_and_default(obj: &mut Value, schema: &Value) {
    walk(obj, schema, true);
}

fn walk(v: &mut Value, schema: &Value, root: bool) {
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let embedded = schema
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true);
            let keep_unknown = preserves(schema)
                || (props.is_none() && additional.is_none() && schema.get("type").is_none());
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if (root || embedded) && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let child_schema = props.and_then(|p| p.get(&k)).or(additional);
                match child_schema {
                    Some(cs) => {
                        let nullable = cs.get("nullable").and_then(Value::as_bool) == Some(true);
                        if m.get(&k).is_some_and(Value::is_null) && !nullable {
                            m.remove(&k);
                            continue;
                        }
                        if let Some(child) = m.get_mut(&k) {
                            walk(child, cs, false);
                        }
                    }
                    None if keep_unknown => {}
                    None => {
                        m.remove(&k);
                    }
                }
            }
            if let Some(props) = props {
                for (k, cs) in props {
                    if !m.contains_key(k)
                        && let Some(d) = cs.get("default")
                    {
                        let mut d = d.clone();
                        walk(&mut d, cs, false);
                        m.insert(k.clone(), d);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for i in items.iter_mut() {
                    walk(i, is, false);
                }
            }
        }
        _ => {}
    }
}

/// Validate against the schema; `path` is the field path so far (`spec.size`).
pub fn validate(v: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let field = if path.is_empty() { "<root>" } else { path };
    if v.is_null() {
        return;
    }
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    if let Some(want) = schema.get("type").and_then(Value::as_str) {
        let got = type_name(v);
        let ok = got == want
            || (want == "number" && got == "integer")
            || (int_or_string && matches!(got, "integer" | "string"));
        if !ok {
            causes.push(Cause::new(
                "FieldValueTypeInvalid",
                field,
                format!(
                    "Invalid value: {}: {field} in body must be of type {want}: {}",
                    json!(got),
                    json!(got)
                ),
            ));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        let list: Vec<String> = options.iter().map(Value::to_string).collect();
        causes.push(Cause::new(
            "FieldValueNotSupported",
            field,
            format!(
                "Unsupported value: {v}: supported values: {}",
                list.join(", ")
            ),
        ));
    }
    let num = |k: &str| schema.get(k).and_then(Value::as_f64);
    if let Some(x) = v.as_f64() {
        if let Some(min) = num("minimum")
            && x < min
        {
            causes.push(Cause::new(
                "FieldValueInvalid",
                field,
                format!(
                    "Invalid value: {v}: {field} in body should be greater than or equal to {min}"
                ),
            ));
        }
        if let Some(max) = num("maximum")
            && x > max
        {
            causes.push(Cause::new(
                "FieldValueInvalid",
                field,
                format!(
                    "Invalid value: {v}: {field} in body should be less than or equal to {max}"
                ),
            ));
        }
    }
    let count = |k: &str| schema.get(k).and_then(Value::as_u64).map(|n| n as usize);
    if let Some(s) = v.as_str() {
        let len = s.chars().count();
        if let Some(min) = count("minLength")
            && len < min
        {
            causes.push(Cause::new(
                "FieldValueInvalid",
                field,
                format!("Invalid value: {v}: {field} in body should be at least {min} chars long"),
            ));
        }
        if let Some(max) = count("maxLength")
            && len > max
        {
            causes.push(Cause::new(
                "FieldValueTooLong",
                field,
                format!("Too long: may not be more than {max} bytes"),
            ));
        }
        if let Some(p) = schema.get("pattern").and_then(Value::as_str)
            && let Ok(re) = regex::Regex::new(p)
            && !re.is_match(s)
        {
            causes.push(Cause::new(
                "FieldValueInvalid",
                field,
                format!("Invalid value: {v}: {field} in body should match '{p}'"),
            ));
        }
    }
    match v {
        Value::Object(m) => {
            if let Some(req) = schema.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if m.get(r).is_none_or(Value::is_null) {
                        causes.push(Cause::required(join(path, r)));
                    }
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in m {
                if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(cs) = props.and_then(|p| p.get(k)).or(additional) {
                    validate(child, cs, &join(path, k), causes);
                }
            }
        }
        Value::Array(items) => {
            if let Some(min) = count("minItems")
                && items.len() < min
            {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    field,
                    format!(
                        "Invalid value: {}: {field} in body should have at least {min} items",
                        items.len()
                    ),
                ));
            }
            if let Some(max) = count("maxItems")
                && items.len() > max
            {
                causes.push(Cause::new(
                    "FieldValueTooMany",
                    field,
                    format!("Too many: {}: must have at most {max} items", items.len()),
                ));
            }
            if let Some(is) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate(item, is, &format!("{path}[{i}]"), causes);
                }
            }
        }
        _ => {}
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

/// Prune, default and validate a custom resource in place.
pub fn apply(obj: &mut Value, schema: &Value) -> Vec<Cause> {
    prune_and_default(obj, schema);
    let mut causes = vec![];
    validate(obj, schema, "", &mut causes);
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["value"], "properties": {
                "value": {"type": "string", "minLength": 1, "pattern": "^[a-z]+$"},
                "size": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "port": {"x-kubernetes-int-or-string": true},
                "opt": {"type": "string", "nullable": true}
            }},
            "status": {"type": "object", "nullable": true, "properties": {"ready": {"type": "boolean"}}}
        }})
    }

    #[test]
    fn prunes_unknown_fields_defaults_and_drops_nulls() {
        let mut o = json!({"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "w"},
            "spec": {"value": "ok", "unknown": 1, "free": {"anything": {"goes": true}}, "labels": {"a": "b"},
                     "mode": null, "opt": null},
            "status": {"ready": true, "extra": "gone"}, "top": "gone"});
        let c = apply(&mut o, &schema());
        assert!(c.is_empty(), "{c:?}");
        assert_eq!(
            o["spec"],
            json!({"value": "ok", "size": 1, "free": {"anything": {"goes": true}}, "labels": {"a": "b"}, "opt": null})
        );
        assert_eq!(o["status"], json!({"ready": true}));
        assert!(o.get("top").is_none());
        assert_eq!(o["metadata"]["name"], "w");
    }

    #[test]
    fn validation_messages() {
        let mut o = json!({"spec": {"size": "big", "mode": "c", "tags": ["a", "b", "c"], "value": "UP", "port": "http"}});
        let c = apply(&mut o, &schema());
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            ["spec.mode", "spec.size", "spec.tags", "spec.value"]
        );
        assert_eq!(
            c[1].message,
            r#"Invalid value: "string": spec.size in body must be of type integer: "string""#
        );
        assert_eq!(
            c[0].message,
            r#"Unsupported value: "c": supported values: "a", "b""#
        );
        let mut missing = json!({"spec": {"size": 11}});
        let c = apply(&mut missing, &schema());
        assert_eq!(c[0], Cause::required("spec.value"));
        assert!(c[1].message.contains("less than or equal to 10"));
    }

    #[test]
    fn preserve_unknown_at_root_keeps_everything() {
        let s = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        let mut o = json!({"spec": {"a": 1}, "x": [1]});
        assert!(apply(&mut o, &s).is_empty());
        assert_eq!(o, json!({"spec": {"a": 1}, "x": [1]}));
    }
}
