//! JSON reader (streaming into the ordered tree, so key order is the file's) and writer.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::scalar::{double_quoted, format_float};
use super::{Document, MapItem, Node, Scalar, SeqItem};
use crate::error::{Error, Result};

pub(super) fn parse(text: &str) -> Result<Document> {
    let mut de = serde_json::Deserializer::from_str(text);
    let root = NodeSeed.deserialize(&mut de).map_err(json_error)?;
    de.end().map_err(json_error)?;
    Ok(Document::new(root))
}

fn json_error(e: serde_json::Error) -> Error {
    Error::Parse {
        format: "JSON",
        line: (e.line() > 0).then_some(e.line()),
        message: e.to_string(),
    }
}

struct NodeSeed;

impl<'de> DeserializeSeed<'de> for NodeSeed {
    type Value = Node;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Node, E> {
        Ok(Node::Scalar(Scalar::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Node, E> {
        Ok(Node::Scalar(Scalar::Int(v)))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Node, E> {
        Ok(Node::Scalar(match i64::try_from(v) {
            Ok(i) => Scalar::Int(i),
            Err(_) => Scalar::Float(v as f64),
        }))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Node, E> {
        Ok(Node::Scalar(Scalar::Float(v)))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Node, E> {
        Ok(Node::string(v))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Node, E> {
        Ok(Node::string(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Node, E> {
        Ok(Node::Scalar(Scalar::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(NodeSeed)? {
            items.push(SeqItem::Value(v));
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Node, A::Error> {
        let mut items: Vec<MapItem> = Vec::new();
        // A set, not a scan of `items`: the scan is quadratic in the number of keys.
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(NodeSeed)?;
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            items.push(MapItem::Entry(key, value));
        }
        Ok(Node::Map(items))
    }
}

pub(super) fn emit(doc: &Document, indent: &str) -> String {
    let mut out = String::new();
    write_node(&mut out, &doc.root, indent, 0);
    out.push('\n');
    out
}

fn newline(out: &mut String, indent: &str, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str(indent);
    }
}

fn write_node(out: &mut String, node: &Node, indent: &str, depth: usize) {
    match node {
        Node::Map(items) => {
            let entries: Vec<(&String, &Node)> = items
                .iter()
                .filter_map(|i| match i {
                    MapItem::Entry(k, v) => Some((k, v)),
                    MapItem::Comment(_) => None,
                })
                .collect();
            if entries.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (n, (k, v)) in entries.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                newline(out, indent, depth + 1);
                out.push_str(&double_quoted(k));
                out.push_str(": ");
                write_node(out, v, indent, depth + 1);
            }
            newline(out, indent, depth);
            out.push('}');
        }
        Node::Seq(items) => {
            let values: Vec<&Node> = items
                .iter()
                .filter_map(|i| match i {
                    SeqItem::Value(v) => Some(v),
                    SeqItem::Comment(_) => None,
                })
                .collect();
            if values.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (n, v) in values.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                newline(out, indent, depth + 1);
                write_node(out, v, indent, depth + 1);
            }
            newline(out, indent, depth);
            out.push(']');
        }
        Node::Scalar(s) => match s {
            Scalar::Null => out.push_str("null"),
            Scalar::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Scalar::Int(i) => out.push_str(&i.to_string()),
            Scalar::Float(f) if f.is_finite() => {
                // Keep it a float when read back (`0.0`, not `0`), as serde_json does.
                let s = format_float(*f);
                out.push_str(&s);
                if !s.contains(['.', 'e', 'E']) {
                    out.push_str(".0");
                }
            }
            Scalar::Float(f) => out.push_str(&double_quoted(&format_float(*f))),
            Scalar::Str(s) | Scalar::Time(s) => out.push_str(&double_quoted(s)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_types() {
        let src = "{\n  \"z\": 1,\n  \"a\": [\n    true,\n    null,\n    1.5,\n    \"s\"\n  ],\n  \"m\": {}\n}\n";
        let doc = parse(src).unwrap();
        assert_eq!(emit(&doc, "  "), src);
    }

    #[test]
    fn errors() {
        let e = parse("{\"a\": 1,\n\"a\": 2}").unwrap_err().to_string();
        assert!(e.contains("duplicate"), "{e}");
        let e = parse("{\"a\": \n").unwrap_err().to_string();
        assert!(e.contains("JSON"), "{e}");
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(parse(&deep).is_err());
    }
}
