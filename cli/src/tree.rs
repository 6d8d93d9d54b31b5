//! The fixed-order emitter for what kage writes (AgeSecrets, Secret manifests, `.sops.yaml`).
//!
//! Output goes through [`Node`], an ordered tree, so that key order is decided by kage and not
//! by a map type: YAML or JSON, both with 2-space indentation.
//!
//! Why not `kage_core::document`: that model round-trips the user's files for SOPS (go-yaml v3
//! typing, comments, block scalars as written), while this one writes kage's own canonical
//! layout. They differ on purpose where it shows: numbers are kept as written (an integer above
//! `i64::MAX` in a user's extra field stays exact; the core holds it as a float), plaintext
//! strings with `#`, quotes or trailing newlines are always double-quoted, JSON strings are
//! escaped by serde_json, and a list inside a list is written on its own lines. Folding the two
//! would change what `kage` prints; that was tried and left (2026-11-28).

use serde_json::Value;

/// The serialisation of an input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML (multi-document).
    Yaml,
    /// JSON (one value, or a stream of values).
    Json,
}

impl Format {
    /// JSON when the first non-blank byte is `{` or `[`.
    pub fn detect(bytes: &[u8]) -> Format {
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') | Some(b'[') => Format::Json,
            _ => Format::Yaml,
        }
    }

    /// `YAML` or `JSON` (as kage-core names formats in its errors).
    pub fn name(self) -> &'static str {
        match self {
            Format::Yaml => "YAML",
            Format::Json => "JSON",
        }
    }
}

/// An ordered output tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A mapping, in this order.
    Map(Vec<(String, Node)>),
    /// A sequence.
    Seq(Vec<Node>),
    /// A string.
    Str(String),
    /// A number, as written.
    Num(String),
    /// A boolean.
    Bool(bool),
    /// Null.
    Null,
}

impl Node {
    /// A mapping from pairs.
    pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Node)>) -> Node {
        Node::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// A string.
    pub fn str(s: impl Into<String>) -> Node {
        Node::Str(s.into())
    }

    /// Converts a JSON value (object keys come out sorted, as `serde_json::Map` keeps them).
    pub fn from_value(v: &Value) -> Node {
        match v {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => Node::Num(n.to_string()),
            Value::String(s) => Node::Str(s.clone()),
            Value::Array(a) => Node::Seq(a.iter().map(Node::from_value).collect()),
            Value::Object(o) => Node::Map(
                o.iter()
                    .map(|(k, v)| (k.clone(), Node::from_value(v)))
                    .collect(),
            ),
        }
    }

    /// Overwrites every string in the tree (for trees that held plaintext).
    pub fn wipe(&mut self) {
        use zeroize::Zeroize;
        match self {
            Node::Map(m) => m.iter_mut().for_each(|(k, v)| {
                k.zeroize();
                v.wipe();
            }),
            Node::Seq(s) => s.iter_mut().for_each(Node::wipe),
            Node::Str(s) | Node::Num(s) => s.zeroize(),
            Node::Bool(_) | Node::Null => {}
        }
    }

    /// Roughly how many bytes this node takes when emitted (to size the output buffer once).
    fn size_hint(&self) -> usize {
        match self {
            Node::Map(m) => m.iter().map(|(k, v)| k.len() + 8 + v.size_hint()).sum(),
            Node::Seq(s) => s.iter().map(|v| 8 + v.size_hint()).sum(),
            Node::Str(s) => s.len() + 4,
            Node::Num(n) => n.len(),
            Node::Bool(_) | Node::Null => 5,
        }
    }

    fn is_empty_collection(&self) -> bool {
        matches!(self, Node::Map(m) if m.is_empty()) || matches!(self, Node::Seq(s) if s.is_empty())
    }
}

/// Emits documents in `format`: YAML documents are separated by `---`; several JSON documents
/// are written one after the other (a JSON stream, which `kubectl apply -f` reads too).
pub fn emit(docs: &[Node], format: Format) -> String {
    let mut out = String::with_capacity(docs.iter().map(Node::size_hint).sum());
    for (i, doc) in docs.iter().enumerate() {
        match format {
            Format::Yaml => {
                if i > 0 {
                    out.push_str("---\n");
                }
                emit_yaml_doc(doc, &mut out);
            }
            Format::Json => {
                emit_json(doc, 0, &mut out);
                out.push('\n');
            }
        }
    }
    out
}

fn emit_yaml_doc(doc: &Node, out: &mut String) {
    match doc {
        Node::Map(m) if !m.is_empty() => emit_yaml_map(m, 0, out),
        Node::Seq(s) if !s.is_empty() => emit_yaml_seq(s, 0, out),
        other => {
            emit_yaml_inline(other, 0, out);
            out.push('\n');
        }
    }
}

fn indent(n: usize, out: &mut String) {
    for _ in 0..n {
        out.push(' ');
    }
}

fn emit_yaml_map(m: &[(String, Node)], level: usize, out: &mut String) {
    for (k, v) in m {
        indent(level, out);
        out.push_str(&yaml_key(k));
        out.push(':');
        emit_yaml_value(v, level, out);
    }
}

fn emit_yaml_seq(s: &[Node], level: usize, out: &mut String) {
    for v in s {
        indent(level, out);
        out.push('-');
        match v {
            Node::Map(m) if !m.is_empty() => {
                // first pair on the dash line, the rest aligned under it
                let mut first = true;
                for (k, val) in m {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        indent(level + 2, out);
                    }
                    out.push_str(&yaml_key(k));
                    out.push(':');
                    emit_yaml_value(val, level + 2, out);
                }
            }
            other => emit_yaml_value(other, level, out),
        }
    }
}

/// After `key:` or `-`: a nested block, or ` scalar\n`.
fn emit_yaml_value(v: &Node, level: usize, out: &mut String) {
    match v {
        Node::Map(m) if !m.is_empty() => {
            out.push('\n');
            emit_yaml_map(m, level + 2, out);
        }
        Node::Seq(s) if !s.is_empty() => {
            out.push('\n');
            emit_yaml_seq(s, level + 2, out);
        }
        other => {
            out.push(' ');
            emit_yaml_inline(other, level + 2, out);
            out.push('\n');
        }
    }
}

fn emit_yaml_inline(v: &Node, block_indent: usize, out: &mut String) {
    match v {
        Node::Str(s) => emit_yaml_str(s, block_indent, out),
        Node::Num(n) => out.push_str(n),
        Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Node::Null => out.push_str("null"),
        n if n.is_empty_collection() => out.push_str(if matches!(n, Node::Map(_)) {
            "{}"
        } else {
            "[]"
        }),
        _ => unreachable!("collections are emitted as blocks"),
    }
}

fn emit_yaml_str(s: &str, block_indent: usize, out: &mut String) {
    if is_plain_safe(s) {
        out.push_str(s);
    } else if literal_block_ok(s) {
        let body = s.strip_suffix('\n').unwrap_or(s);
        out.push_str(if s.ends_with('\n') { "|" } else { "|-" });
        for line in body.split('\n') {
            out.push('\n');
            if !line.is_empty() {
                indent(block_indent, out);
                out.push_str(line);
            }
        }
    } else {
        out.push_str(&yaml_quoted(s));
    }
}

fn yaml_key(k: &str) -> String {
    if is_plain_safe(k) {
        k.to_string()
    } else {
        yaml_quoted(k)
    }
}

/// A double-quoted YAML scalar (JSON escapes are a subset of YAML's; a few more are needed).
fn yaml_quoted(s: &str) -> String {
    let json = serde_json::to_string(s).expect("strings always serialise");
    json.chars()
        .map(|c| match c {
            '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{7f}' => {
                format!("\\u{:04x}", c as u32)
            }
            c => c.to_string(),
        })
        .collect()
}

/// Bytes allowed anywhere in a plain scalar kage writes.
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b' ' | b'-'
                    | b'_'
                    | b'.'
                    | b'/'
                    | b':'
                    | b'='
                    | b'+'
                    | b'@'
                    | b','
                    | b'('
                    | b')'
                    | b'%'
                    | b'~'
                    | b'^'
            );
        i += 1;
    }
    t
};

/// Strings that read back as the same string when written plain, in YAML 1.1 and 1.2 alike.
fn is_plain_safe(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == b'/' || first == b'_')
        || last == b' '
        || last == b':'
    {
        return false;
    }
    if !bytes.iter().fold(true, |ok, &b| ok & PLAIN[b as usize]) || s.contains(": ") {
        return false;
    }
    if bytes.len() > 5 {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    !matches!(
        lower.as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "nan" | "inf"
    )
}

/// A multi-line string that a literal block scalar keeps exactly.
fn literal_block_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with([' ', '\n', '\t'])
        && !s.ends_with("\n\n")
        && !s.ends_with([' ', '\t'])
        && s.chars().all(|c| c == '\n' || !c.is_control())
        && !s.contains(['\u{85}', '\u{2028}', '\u{2029}', '\u{feff}'])
        && !s.split('\n').any(|l| l.ends_with([' ', '\t']))
}

fn emit_json(v: &Node, level: usize, out: &mut String) {
    match v {
        Node::Map(m) if m.is_empty() => out.push_str("{}"),
        Node::Seq(s) if s.is_empty() => out.push_str("[]"),
        Node::Map(m) => {
            out.push_str("{\n");
            for (i, (k, val)) in m.iter().enumerate() {
                indent(level + 2, out);
                out.push_str(&serde_json::to_string(k).expect("string"));
                out.push_str(": ");
                emit_json(val, level + 2, out);
                if i + 1 < m.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(level, out);
            out.push('}');
        }
        Node::Seq(s) => {
            out.push_str("[\n");
            for (i, val) in s.iter().enumerate() {
                indent(level + 2, out);
                emit_json(val, level + 2, out);
                if i + 1 < s.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(level, out);
            out.push(']');
        }
        Node::Str(s) => out.push_str(&serde_json::to_string(s).expect("string")),
        Node::Num(n) => out.push_str(n),
        Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Node::Null => out.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_values(bytes: &[u8]) -> Result<(Format, Vec<Value>), String> {
        let text = std::str::from_utf8(bytes).unwrap();
        match Format::detect(bytes) {
            Format::Json => serde_json::from_str(text)
                .map(|v| (Format::Json, vec![v]))
                .map_err(|e| e.to_string()),
            Format::Yaml => {
                let opts = serde_saphyr::options! { strict_booleans: true };
                serde_saphyr::from_multiple_with_options(text, opts)
                    .map(|v| (Format::Yaml, v))
                    .map_err(|e| e.to_string())
            }
        }
    }

    fn roundtrip(node: &Node) {
        let yaml = emit(std::slice::from_ref(node), Format::Yaml);
        let (_, back) = parse_values(yaml.as_bytes()).unwrap();
        let json = emit(std::slice::from_ref(node), Format::Json);
        let (_, back_json) = parse_values(json.as_bytes()).unwrap();
        assert_eq!(back_json, back, "{yaml}\n{json}");
        assert_eq!(Node::from_value(&back[0]), sort(node), "{yaml}");
    }

    fn sort(n: &Node) -> Node {
        match n {
            Node::Map(m) => {
                let mut m: Vec<_> = m.iter().map(|(k, v)| (k.clone(), sort(v))).collect();
                m.sort_by(|a, b| a.0.cmp(&b.0));
                Node::Map(m)
            }
            Node::Seq(s) => Node::Seq(s.iter().map(sort).collect()),
            other => other.clone(),
        }
    }

    #[test]
    fn strings_survive() {
        let tricky = [
            "",
            " lead",
            "trail ",
            "yes",
            "No",
            "null",
            "~",
            "1",
            "0x1f",
            "1e3",
            "-1",
            ".5",
            "2001-12-14",
            "a: b",
            "a #b",
            "#x",
            "- x",
            "[x]",
            "{x}",
            "*a",
            "&a",
            "!t",
            "|",
            ">",
            "'q'",
            "\"q\"",
            "%x",
            "@x",
            "`x",
            "héllo",
            "日本",
            "tab\there",
            "a\nb",
            "a\nb\n",
            "a\n\n",
            "\nx",
            "x\r\ny",
            "bell\u{7}",
            "line\u{2028}sep",
            "kage:v1:ab:Zm9v",
            "age1abc",
            "kubernetes.io/tls",
            "ends:",
            "1:20",
            "on",
            "Y",
            "=",
            "<<",
            "a \n b",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        ];
        for s in tricky {
            let node = Node::map([("k", Node::str(s)), (s, Node::Bool(true))]);
            roundtrip(&node);
        }
    }

    #[test]
    fn nested_layout() {
        let node = Node::map([
            ("apiVersion", Node::str("v1")),
            (
                "metadata",
                Node::map([("name", Node::str("db")), ("labels", Node::Map(vec![]))]),
            ),
            (
                "items",
                Node::Seq(vec![
                    Node::map([("a", Node::Num("1".into())), ("b", Node::Null)]),
                    Node::str("x"),
                    Node::Seq(vec![Node::str("y")]),
                ]),
            ),
        ]);
        let yaml = emit(std::slice::from_ref(&node), Format::Yaml);
        assert_eq!(
            yaml,
            "apiVersion: v1\nmetadata:\n  name: db\n  labels: {}\nitems:\n  - a: 1\n    b: null\n  - x\n  -\n    - \"y\"\n"
        );
        roundtrip(&node);
    }
}
