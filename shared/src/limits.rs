//! The one set of input limits every kage parser enforces (YAML, JSON, SOPS files, manifests,
//! `.kage.yaml`, controller request bodies), and the error that says which one was hit.
//!
//! The numbers are sized from Kubernetes itself: the API server refuses an object above about
//! 1.5 MiB (etcd's default request limit) and a Secret's data above 1 MiB. Sealing grows a value
//! by base64 (4/3) plus about 200 bytes of age header; SOPS by base64 plus about 90 bytes of
//! `ENC[…]` per value. A largest-possible Secret is therefore under 2.5 MiB sealed, and
//! [`MAX_INPUT_BYTES`] leaves room for a stream of a few of them. Every other limit is far above
//! any real manifest and low enough that a hostile 360-byte alias bomb or a 3-million-key JSON
//! object is refused before it costs more than some tens of MiB. `docs/security.md` lists them.

use std::fmt;

use crate::error::{Error, Result};

/// Largest input file or request body accepted, in bytes (8 MiB).
pub const MAX_INPUT_BYTES: usize = 8 << 20;
/// Most nodes (mapping keys, values, sequence items; aliases counted expanded) in one input.
/// A 1 MiB Secret of the shortest possible entries has about 350,000.
pub const MAX_NODES: usize = 500_000;
/// Deepest nesting of mappings and sequences (Kubernetes objects use under 10).
pub const MAX_DEPTH: usize = 64;
/// Most documents in one YAML stream or JSON sequence.
pub const MAX_DOCUMENTS: usize = 1024;
/// Most alias (`*name`) uses in one YAML input (each is also charged its expanded size).
pub const MAX_ALIASES: usize = 10_000;

/// Which limit an input exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// [`MAX_INPUT_BYTES`].
    InputBytes,
    /// [`MAX_NODES`].
    Nodes,
    /// [`MAX_DEPTH`].
    Depth,
    /// [`MAX_DOCUMENTS`].
    Documents,
    /// [`MAX_ALIASES`].
    Aliases,
}

impl Limit {
    /// The configured maximum.
    pub fn max(self) -> usize {
        match self {
            Limit::InputBytes => MAX_INPUT_BYTES,
            Limit::Nodes => MAX_NODES,
            Limit::Depth => MAX_DEPTH,
            Limit::Documents => MAX_DOCUMENTS,
            Limit::Aliases => MAX_ALIASES,
        }
    }
}

impl fmt::Display for Limit {
    /// `input size limit (8 MiB)`, `nesting depth limit (64)`, …
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::InputBytes => write!(f, "input size limit ({} MiB)", MAX_INPUT_BYTES >> 20),
            Limit::Nodes => write!(f, "node count limit ({MAX_NODES} keys and values)"),
            Limit::Depth => write!(f, "nesting depth limit ({MAX_DEPTH} levels)"),
            Limit::Documents => write!(f, "document count limit ({MAX_DOCUMENTS} documents)"),
            Limit::Aliases => write!(f, "alias limit ({MAX_ALIASES} alias uses)"),
        }
    }
}

pub(crate) fn exceeded(format: &'static str, limit: Limit, line: Option<usize>) -> Error {
    Error::Limit {
        format,
        limit,
        line,
    }
}

/// Refuse an input above [`MAX_INPUT_BYTES`] before anything is parsed.
pub fn check_size(len: usize, format: &'static str) -> Result<()> {
    if len > MAX_INPUT_BYTES {
        return Err(exceeded(format, Limit::InputBytes, None));
    }
    Ok(())
}

/// Check a JSON text (one value or a whitespace-separated sequence of values) against every
/// limit in one pass over its bytes, allocating nothing, so that a huge object is refused before
/// a tree of it is built. Syntax is not checked here: the real parser does that afterwards.
///
/// ```
/// use kage_core::limits::{scan_json, Limit};
/// assert!(scan_json(r#"{"a": [1, 2, {"b": null}]}"#).is_ok());
/// let deep = "[".repeat(100);
/// assert!(matches!(scan_json(&deep), Err(kage_core::Error::Limit { limit: Limit::Depth, .. })));
/// ```
pub fn scan_json(text: &str) -> Result<()> {
    check_size(text.len(), "JSON")?;
    let mut depth = 0usize;
    let mut nodes = 0usize;
    let mut documents = 0usize;
    let mut line = 1usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut in_token = false;
    for &b in text.as_bytes() {
        if b == b'\n' {
            line += 1;
        }
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        // A value that begins outside every collection begins a document.
        let top = depth == 0;
        let starts_value = match b {
            b'"' => {
                in_string = true;
                true
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(exceeded("JSON", Limit::Depth, Some(line)));
                }
                true
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                false
            }
            b' ' | b'\t' | b'\r' | b'\n' | b',' | b':' => false,
            // A number, `true`, `false` or `null` (one node however long).
            _ => !in_token,
        };
        in_token = !matches!(
            b,
            b' ' | b'\t' | b'\r' | b'\n' | b',' | b':' | b'{' | b'[' | b'}' | b']' | b'"'
        );
        if starts_value {
            if top {
                documents += 1;
                if documents > MAX_DOCUMENTS {
                    return Err(exceeded("JSON", Limit::Documents, Some(line)));
                }
            }
            nodes += 1;
            if nodes > MAX_NODES {
                return Err(exceeded("JSON", Limit::Nodes, Some(line)));
            }
        }
    }
    Ok(())
}

/// The serde-saphyr budget matching these limits, for every typed YAML read.
pub fn yaml_budget() -> serde_saphyr::Budget {
    let mut b = serde_saphyr::Budget::default();
    b.max_reader_input_bytes = Some(MAX_INPUT_BYTES);
    b.max_nodes = MAX_NODES;
    // Every node is at most a start and an end event, plus document and stream events.
    b.max_events = 2 * MAX_NODES + 2 * MAX_DOCUMENTS + 2;
    b.max_depth = MAX_DEPTH;
    b.max_documents = MAX_DOCUMENTS;
    b.max_aliases = MAX_ALIASES;
    b.max_anchors = MAX_ALIASES;
    b.max_recorded_anchor_events = MAX_NODES;
    b.max_recorded_anchor_bytes = MAX_INPUT_BYTES;
    b.max_total_scalar_bytes = MAX_INPUT_BYTES;
    b.max_total_comment_bytes = MAX_INPUT_BYTES;
    b
}

/// serde-saphyr's default options with [`yaml_budget`].
pub fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! { budget: Some(yaml_budget()) }
}

/// The limit a serde-saphyr error reports as exceeded, as a kage error (`None` for any other
/// error: syntax, wrong type, …).
pub fn from_yaml_error(err: &serde_saphyr::Error) -> Option<Error> {
    use serde_saphyr::budget::BudgetBreach as B;
    let mut e = err;
    while let serde_saphyr::Error::WithSnippet { error, .. }
    | serde_saphyr::Error::AliasError { error, .. } = e
    {
        e = error;
    }
    let serde_saphyr::Error::Budget { breach, .. } = e else {
        return None;
    };
    let limit = match breach {
        B::InputBytes { .. } | B::ScalarBytes { .. } | B::CommentBytes { .. } => Limit::InputBytes,
        B::RecordedAnchorBytes { .. } => Limit::InputBytes,
        B::Depth { .. } => Limit::Depth,
        B::Documents { .. } => Limit::Documents,
        B::Aliases { .. } | B::Anchors { .. } | B::AliasAnchorRatio { .. } => Limit::Aliases,
        B::MergeKeys { .. } => Limit::Aliases,
        _ => Limit::Nodes,
    };
    let line = err.location().map(|l| l.line() as usize).filter(|&l| l > 0);
    Some(exceeded("YAML", limit, line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit_of(r: Result<()>) -> Option<Limit> {
        match r {
            Err(Error::Limit { limit, .. }) => Some(limit),
            _ => None,
        }
    }

    #[test]
    fn json_scan_counts_nodes_depth_and_documents() {
        assert_eq!(
            limit_of(scan_json(r#"{"a":"b\"{{{{","c":[1,true,null]}"#)),
            None
        );
        let wide = format!("{{{}\"z\":0}}", "\"k\":1,".repeat(MAX_NODES / 2));
        assert_eq!(limit_of(scan_json(&wide)), Some(Limit::Nodes));
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(limit_of(scan_json(&deep)), None);
        let deeper = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(limit_of(scan_json(&deeper)), Some(Limit::Depth));
        assert_eq!(limit_of(scan_json(&"{}\n".repeat(MAX_DOCUMENTS))), None);
        assert_eq!(
            limit_of(scan_json(&"{}\n".repeat(MAX_DOCUMENTS + 1))),
            Some(Limit::Documents)
        );
        // Strings with brackets and escaped quotes do not nest.
        let s = format!("[\"{}\\\"[\"]", "[".repeat(200));
        assert_eq!(limit_of(scan_json(&s)), None);
    }

    #[test]
    fn size_is_checked_first() {
        let big = " ".repeat(MAX_INPUT_BYTES + 1);
        assert_eq!(limit_of(scan_json(&big)), Some(Limit::InputBytes));
    }

    #[test]
    fn yaml_budget_breaches_name_the_limit() {
        let docs = "---\na: 1\n".repeat(MAX_DOCUMENTS + 1);
        let err =
            serde_saphyr::from_multiple_with_options::<serde_json::Value>(&docs, yaml_options())
                .unwrap_err();
        let e = from_yaml_error(&err).expect("a budget error");
        assert!(
            matches!(
                e,
                Error::Limit {
                    limit: Limit::Documents,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("document count limit (1024"), "{e}");
        let bomb = alias_bomb();
        let err = serde_saphyr::from_str_with_options::<serde_json::Value>(&bomb, yaml_options())
            .unwrap_err();
        assert!(from_yaml_error(&err).is_some(), "{err}");
        let syntax = serde_saphyr::from_str::<serde_json::Value>("a: [").unwrap_err();
        assert!(from_yaml_error(&syntax).is_none());
    }

    /// The billion-laughs shape: 9 levels of 9 aliases each.
    pub(crate) fn alias_bomb() -> String {
        let mut s = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let p = i - 1;
            s.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        s
    }
}
