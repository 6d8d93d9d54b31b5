//! Duplicate keys in JSON are refused, as YAML's are: a key given twice is ambiguous (serde_json
//! and Go's encoding/json keep the last one, a reviewer reading the file sees the first).

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::{Error, Result};

/// Checks every object of a JSON text, or of a stream of JSON texts, for a key given twice.
/// Syntax errors are reported too; the message names the key and its line, never a value.
///
/// ```
/// use kage_core::document::check_json_unique_keys;
/// assert!(check_json_unique_keys("{\"a\": 1, \"b\": {\"a\": 2}}").is_ok());
/// let e = check_json_unique_keys("{\"a\": 1,\n \"a\": 2}").unwrap_err();
/// assert_eq!(e.to_string(), "invalid JSON at line 2: duplicate key \"a\"");
/// ```
pub fn check_json_unique_keys(text: &str) -> Result<()> {
    for doc in serde_json::Deserializer::from_str(text).into_iter::<Unique>() {
        doc.map_err(|e| {
            let full = e.to_string();
            // serde_json appends " at line L column C"; the line is kept apart
            let message = full
                .rsplit_once(" at line ")
                .map_or(full.as_str(), |(m, _)| m)
                .to_string();
            Error::Parse {
                format: "JSON",
                line: (e.line() > 0).then_some(e.line()),
                message,
            }
        })?;
    }
    Ok(())
}

/// Any JSON value, checked and dropped.
struct Unique;

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Unique, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_unit<E>(self) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Unique, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            map.next_value::<Unique>()?;
            seen.insert(key);
        }
        Ok(Unique)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_at_any_depth_and_in_streams() {
        for (text, line, key) in [
            ("{\"a\": 1, \"a\": 1}", 1, "a"),
            ("{\"x\": [{\"k\": 1},\n {\"k\": 2, \"k\": 3}]}", 2, "k"),
            ("{\"a\": 1}\n{\"b\": {\"c\": 1,\n\"c\": 1}}", 3, "c"),
            // escapes decode first: "\u0061" is "a"
            ("{\"a\": 1, \"\\u0061\": 2}", 1, "a"),
        ] {
            let e = check_json_unique_keys(text).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("invalid JSON at line {line}: duplicate key \"{key}\""),
                "{text}"
            );
        }
        for ok in [
            "{\"a\": {\"a\": {\"a\": 1}}, \"b\": [1, 2.5, null, true, \"s\"]}",
            "{\"a\": 1}{\"a\": 2}",
            "",
        ] {
            check_json_unique_keys(ok).unwrap();
        }
    }

    #[test]
    fn the_message_never_holds_a_value() {
        let e = check_json_unique_keys("{\"password\": \"s3cret\", \"password\": \"s3cret\"}")
            .unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let e = check_json_unique_keys("{\"password\": \"s3cret").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
}
