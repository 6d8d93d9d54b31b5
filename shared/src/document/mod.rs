//! An ordered document tree for YAML and JSON that keeps key order and YAML comments.
//!
//! The SOPS engine and the manifest handling work on this tree: values are typed as go-yaml v3
//! resolves them (sops's MAC depends on it), mapping order is the source order, and comments are
//! entries of their enclosing mapping or sequence, as sops models them.

mod json;
mod json_keys;
mod scalar;
mod yaml;

pub use json_keys::check_json_unique_keys;
pub use scalar::Scalar;

/// Parse an RFC 3339 / YAML timestamp into the canonical RFC3339Nano text sops uses.
pub(crate) fn resolve_timestamp(text: &str) -> Option<String> {
    match scalar::resolve_plain(text) {
        Scalar::Time(t) => Some(t),
        _ => None,
    }
}

use crate::error::{Error, Result};

/// The serialisation of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML 1.2 (multi-document allowed).
    Yaml,
    /// JSON (one document).
    Json,
}

impl Format {
    /// JSON when the first non-blank byte opens an object or array, YAML otherwise.
    pub fn detect(bytes: &[u8]) -> Format {
        let first = bytes
            .iter()
            .find(|b| !b" \t\r\n".contains(b))
            .copied()
            .unwrap_or(b'a');
        if first == b'{' || first == b'[' {
            Format::Json
        } else {
            Format::Yaml
        }
    }

    /// `YAML` or `JSON`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Yaml => "YAML",
            Format::Json => "JSON",
        }
    }
}

/// One entry of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub enum MapItem {
    /// `key: value`.
    Entry(String, Node),
    /// A comment line (text after `#`).
    Comment(String),
}

/// One entry of a sequence.
#[derive(Debug, Clone, PartialEq)]
pub enum SeqItem {
    /// A value.
    Value(Node),
    /// A comment line (text after `#`).
    Comment(String),
}

/// A node of the tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A mapping with string keys, in order.
    Map(Vec<MapItem>),
    /// A sequence.
    Seq(Vec<SeqItem>),
    /// A scalar.
    Scalar(Scalar),
}

impl Node {
    /// An empty mapping.
    pub fn map() -> Node {
        Node::Map(Vec::new())
    }

    /// A string scalar.
    pub fn string(s: impl Into<String>) -> Node {
        Node::Scalar(Scalar::Str(s.into()))
    }

    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(items) => items.iter().find_map(|i| match i {
                MapItem::Entry(k, v) if k == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// The value of `key` in a mapping, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match self {
            Node::Map(items) => items.iter_mut().find_map(|i| match i {
                MapItem::Entry(k, v) if k == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// The node at a path of mapping keys.
    pub fn get_path(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, key| node.get(key))
    }

    /// The string value of a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar(Scalar::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// Whether this is a null scalar.
    pub fn is_null(&self) -> bool {
        matches!(self, Node::Scalar(Scalar::Null))
    }

    /// Set `key` in a mapping: replaces the value in place, or appends a new entry.
    /// Does nothing on a non-mapping.
    pub fn insert(&mut self, key: impl Into<String>, value: Node) {
        let key = key.into();
        if let Node::Map(items) = self {
            for item in items.iter_mut() {
                if let MapItem::Entry(k, v) = item
                    && *k == key
                {
                    *v = value;
                    return;
                }
            }
            items.push(MapItem::Entry(key, value));
        }
    }

    /// Remove `key` from a mapping, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Node> {
        if let Node::Map(items) = self {
            let pos = items
                .iter()
                .position(|i| matches!(i, MapItem::Entry(k, _) if k == key))?;
            if let MapItem::Entry(_, v) = items.remove(pos) {
                return Some(v);
            }
        }
        None
    }

    /// The entries of a mapping (comments skipped).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Node)> {
        let items: &[MapItem] = match self {
            Node::Map(items) => items,
            _ => &[],
        };
        items.iter().filter_map(|i| match i {
            MapItem::Entry(k, v) => Some((k.as_str(), v)),
            MapItem::Comment(_) => None,
        })
    }

    /// Sort every mapping's entries by key, recursively (comments move with the entry after
    /// them). The API server stores custom resources with sorted keys; see `docs/format.md`.
    pub fn sort_keys(&mut self) {
        match self {
            Node::Map(items) => {
                let mut groups: Vec<(String, Vec<MapItem>)> = Vec::new();
                let mut pending = Vec::new();
                for item in items.drain(..) {
                    match item {
                        MapItem::Comment(_) => pending.push(item),
                        MapItem::Entry(ref k, _) => {
                            let key = k.clone();
                            pending.push(item);
                            groups.push((key, std::mem::take(&mut pending)));
                        }
                    }
                }
                groups.sort_by(|a, b| a.0.cmp(&b.0));
                for (_, mut group) in groups {
                    for item in group.iter_mut() {
                        if let MapItem::Entry(_, v) = item {
                            v.sort_keys();
                        }
                    }
                    items.extend(group);
                }
                items.extend(pending);
            }
            Node::Seq(items) => {
                for item in items {
                    if let SeqItem::Value(v) = item {
                        v.sort_keys();
                    }
                }
            }
            Node::Scalar(_) => {}
        }
    }

    /// Convert to a `serde_json::Value` (comments dropped; timestamps become strings).
    pub fn to_json_value(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Map(items) => Value::Object(
                items
                    .iter()
                    .filter_map(|i| match i {
                        MapItem::Entry(k, v) => Some((k.clone(), v.to_json_value())),
                        MapItem::Comment(_) => None,
                    })
                    .collect(),
            ),
            Node::Seq(items) => Value::Array(
                items
                    .iter()
                    .filter_map(|i| match i {
                        SeqItem::Value(v) => Some(v.to_json_value()),
                        SeqItem::Comment(_) => None,
                    })
                    .collect(),
            ),
            Node::Scalar(s) => s.to_json_value(),
        }
    }

    /// Build from a `serde_json::Value` (object keys in the value's iteration order).
    pub fn from_json_value(value: &serde_json::Value) -> Node {
        use serde_json::Value;
        match value {
            Value::Null => Node::Scalar(Scalar::Null),
            Value::Bool(b) => Node::Scalar(Scalar::Bool(*b)),
            Value::Number(n) => Node::Scalar(scalar::from_json_number(n)),
            Value::String(s) => Node::string(s.clone()),
            Value::Array(a) => Node::Seq(
                a.iter()
                    .map(|v| SeqItem::Value(Node::from_json_value(v)))
                    .collect(),
            ),
            Value::Object(o) => Node::Map(
                o.iter()
                    .map(|(k, v)| MapItem::Entry(k.clone(), Node::from_json_value(v)))
                    .collect(),
            ),
        }
    }
}

impl zeroize::Zeroize for Node {
    /// Overwrite every scalar string and comment (a tree that held plaintext, before it is
    /// dropped); other scalars become null. Keys stay: they are in clear in SOPS files too.
    fn zeroize(&mut self) {
        match self {
            Node::Map(items) => {
                for item in items {
                    match item {
                        MapItem::Entry(_, v) => v.zeroize(),
                        MapItem::Comment(c) => c.zeroize(),
                    }
                }
            }
            Node::Seq(items) => {
                for item in items {
                    match item {
                        SeqItem::Value(v) => v.zeroize(),
                        SeqItem::Comment(c) => c.zeroize(),
                    }
                }
            }
            Node::Scalar(s) => {
                if let Scalar::Str(t) | Scalar::Time(t) = s {
                    t.zeroize();
                }
                *s = Scalar::Null;
            }
        }
    }
}

impl zeroize::Zeroize for Document {
    fn zeroize(&mut self) {
        self.root.zeroize();
    }
}

/// One document: a YAML document or a JSON file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The root node.
    pub root: Node,
}

impl Document {
    /// A document with this root.
    pub fn new(root: Node) -> Document {
        Document { root }
    }

    /// Convert the root to a `serde_json::Value`.
    pub fn to_json_value(&self) -> serde_json::Value {
        self.root.to_json_value()
    }

    /// Build from a `serde_json::Value`.
    pub fn from_json_value(value: &serde_json::Value) -> Document {
        Document::new(Node::from_json_value(value))
    }
}

/// Parse YAML (every document of the stream) or JSON (one document).
///
/// Every limit of [`crate::limits`] applies (size, nodes with aliases expanded, depth,
/// documents, alias uses); exceeding one is an [`Error::Limit`] naming it.
///
/// ```
/// use kage_core::document::{parse, emit, EmitOptions, Format};
/// let docs = parse(b"# hello\nb: 1\na: [x, z]\n", Format::Yaml).unwrap();
/// let out = emit(&docs, Format::Yaml, &EmitOptions::default()).unwrap();
/// assert_eq!(out, "# hello\nb: 1\na:\n  - x\n  - z\n");
/// ```
pub fn parse(bytes: &[u8], format: Format) -> Result<Vec<Document>> {
    crate::limits::check_size(bytes.len(), format.name())?;
    let text = std::str::from_utf8(bytes).map_err(|e| Error::Parse {
        format: format.name(),
        line: Some(
            bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1,
        ),
        message: "input is not valid UTF-8".into(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        Format::Yaml => yaml::parse(text),
        Format::Json => {
            crate::limits::scan_json(text)?;
            json::parse(text).map(|d| vec![d])
        }
    }
}

/// How to lay out emitted documents.
#[derive(Debug, Clone)]
pub struct EmitOptions {
    /// Spaces per YAML level (sops uses 4, kubectl 2).
    pub yaml_indent: usize,
    /// The JSON indentation unit (sops uses a tab).
    pub json_indent: String,
}

impl Default for EmitOptions {
    fn default() -> Self {
        EmitOptions {
            yaml_indent: 2,
            json_indent: "  ".into(),
        }
    }
}

impl EmitOptions {
    /// The layout the real sops writes: 4-space YAML, tab-indented JSON.
    pub fn sops() -> EmitOptions {
        EmitOptions {
            yaml_indent: 4,
            json_indent: "\t".into(),
        }
    }
}

/// Serialise documents. JSON takes exactly one document.
pub fn emit(docs: &[Document], format: Format, options: &EmitOptions) -> Result<String> {
    match format {
        Format::Yaml => Ok(yaml::emit(docs, options.yaml_indent)),
        Format::Json => match docs {
            [doc] => Ok(json::emit(doc, &options.json_indent)),
            _ => Err(Error::invalid(
                "",
                format!("JSON holds exactly one document, not {}", docs.len()),
            )),
        },
    }
}
