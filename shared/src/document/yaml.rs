//! YAML reader (over granit-parser's event stream, comments included) and writer.
//!
//! Comments are attached as sops (go-yaml v3) sees them: an own-line comment belongs to the
//! innermost open collection whose indentation does not exceed the comment's column; a comment
//! between a key and its block value opens that value; a same-line comment moves above the
//! entry it follows (sops 3.11 does the same).

use std::collections::HashMap;

use base64::Engine as _;
use granit_parser::{Event, Parser, ScalarStyle, Span};

use super::scalar::{double_quoted, needs_escape, needs_quotes, resolve_plain};
use super::{Document, MapItem, Node, Scalar, SeqItem};
use crate::error::{Error, Result};
use crate::limits::{self, Limit};

const CORE_TAG: &str = "tag:yaml.org,2002:";

struct Frame {
    kind: FrameKind,
    /// Column of the collection's entries (block collections); `None` for flow collections.
    indent: Option<usize>,
    /// Source line of each item, parallel to the items (for same-line comments).
    lines: Vec<usize>,
    /// Comments seen while a child collection was open, to place after that child's entry.
    deferred: Vec<String>,
    /// Comments seen between a key (or `-`) and the start of its block value.
    head: Vec<String>,
    anchor: usize,
    start_line: usize,
}

enum FrameKind {
    Map {
        items: Vec<MapItem>,
        pending_key: Option<(String, usize)>,
        /// The keys so far: a duplicate check by scanning `items` is quadratic (a 250,000-key
        /// mapping took minutes).
        seen: std::collections::HashSet<String>,
    },
    Seq {
        items: Vec<SeqItem>,
    },
}

impl Frame {
    fn child_open(&self, is_top: bool) -> bool {
        !is_top
    }
}

struct Builder<'a> {
    lines: Vec<&'a str>,
    stack: Vec<Frame>,
    docs: Vec<Document>,
    doc_root: Option<Node>,
    /// Comments before the root collection of the current document.
    doc_head: Vec<String>,
    /// Anchored nodes with their size in nodes (what an alias to them costs).
    anchors: HashMap<usize, (Node, usize)>,
    /// Nodes built so far (aliases and anchor copies charged their expanded size).
    nodes: usize,
    aliases: usize,
    documents: usize,
}

/// The size of a tree in the units of [`limits::MAX_NODES`]: every key, value, item and comment.
fn node_size(node: &Node) -> usize {
    match node {
        Node::Scalar(_) => 1,
        Node::Map(items) => {
            1 + items
                .iter()
                .map(|i| match i {
                    MapItem::Entry(_, v) => 1 + node_size(v),
                    MapItem::Comment(_) => 1,
                })
                .sum::<usize>()
        }
        Node::Seq(items) => {
            1 + items
                .iter()
                .map(|i| match i {
                    SeqItem::Value(v) => node_size(v),
                    SeqItem::Comment(_) => 1,
                })
                .sum::<usize>()
        }
    }
}

fn parse_error(line: Option<usize>, message: impl Into<String>) -> Error {
    Error::Parse {
        format: "YAML",
        line,
        message: message.into(),
    }
}

pub(super) fn parse(text: &str) -> Result<Vec<Document>> {
    let mut b = Builder {
        lines: text.split('\n').collect(),
        stack: Vec::new(),
        docs: Vec::new(),
        doc_root: None,
        doc_head: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        aliases: 0,
        documents: 0,
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            let m = e.marker();
            parse_error(Some(m.line()), e.info())
        })?;
        b.event(event, span)?;
    }
    if b.docs.is_empty() {
        return Err(parse_error(None, "the input holds no document"));
    }
    Ok(b.docs)
}

impl Builder<'_> {
    /// Charge `n` nodes to the budget.
    fn charge(&mut self, n: usize, line: usize) -> Result<()> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > limits::MAX_NODES {
            return Err(limits::exceeded("YAML", Limit::Nodes, Some(line)));
        }
        Ok(())
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<()> {
        let line = span.start.line();
        match &event {
            Event::Scalar(..) | Event::SequenceStart(..) | Event::MappingStart(..) => {
                self.charge(1, line)?
            }
            Event::Comment(..) => self.charge(1, line)?,
            Event::DocumentStart(..) => {
                self.documents += 1;
                if self.documents > limits::MAX_DOCUMENTS {
                    return Err(limits::exceeded("YAML", Limit::Documents, Some(line)));
                }
            }
            _ => {}
        }
        if matches!(event, Event::SequenceStart(..) | Event::MappingStart(..))
            && self.stack.len() >= limits::MAX_DEPTH
        {
            return Err(limits::exceeded("YAML", Limit::Depth, Some(line)));
        }
        match event {
            Event::StreamStart | Event::StreamEnd | Event::Anchor(..) => {}
            Event::DocumentStart(..) => {
                self.doc_root = None;
                self.anchors.clear();
            }
            Event::DocumentEnd => {
                let root = self.doc_root.take();
                let head = std::mem::take(&mut self.doc_head);
                match root {
                    Some(root) => self.docs.push(Document::new(root)),
                    // A document of comments only (e.g. a trailing `---` then comments) is
                    // dropped, as go-yaml drops it.
                    None if head.is_empty() => {}
                    None => {}
                }
            }
            Event::Comment(text, placement) => {
                let text = text.into_owned();
                if matches!(placement, granit_parser::Placement::Right) {
                    self.right_comment(text, line);
                } else {
                    self.own_line_comment(text, span.start.col());
                }
            }
            Event::Alias(id) => {
                self.aliases += 1;
                if self.aliases > limits::MAX_ALIASES {
                    return Err(limits::exceeded("YAML", Limit::Aliases, Some(line)));
                }
                let size = self
                    .anchors
                    .get(&id)
                    .map(|(_, size)| *size)
                    .ok_or_else(|| parse_error(Some(line), "alias to an unknown anchor"))?;
                // Charged before the copy is made: an alias bomb stops here.
                self.charge(size, line)?;
                let node = self.anchors[&id].0.clone();
                self.add_node(node, line, 0)?;
            }
            Event::UnresolvedAlias(name) => {
                return Err(parse_error(
                    Some(line),
                    format!("alias *{name} has no anchor"),
                ));
            }
            Event::Scalar(value, style, anchor, tag) => {
                let scalar = scalar_of(&value, style, tag.as_deref(), line)?;
                self.add_node(Node::Scalar(scalar), line, anchor)?;
            }
            Event::SequenceStart(style, anchor, _) => {
                let indent = matches!(style, granit_parser::StructureStyle::Block)
                    .then(|| self.dash_column(line, span.start.col()));
                self.open(FrameKind::Seq { items: Vec::new() }, indent, anchor, line);
            }
            Event::MappingStart(style, anchor, _) => {
                let indent =
                    matches!(style, granit_parser::StructureStyle::Block).then(|| span.start.col());
                self.open(
                    FrameKind::Map {
                        items: Vec::new(),
                        pending_key: None,
                        seen: Default::default(),
                    },
                    indent,
                    anchor,
                    line,
                );
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let mut frame = self
                    .stack
                    .pop()
                    .ok_or_else(|| parse_error(Some(line), "unbalanced collection"))?;
                let node = match frame.kind {
                    FrameKind::Map { mut items, .. } => {
                        items.extend(frame.head.drain(..).map(MapItem::Comment));
                        items.extend(frame.deferred.drain(..).map(MapItem::Comment));
                        Node::Map(items)
                    }
                    FrameKind::Seq { mut items } => {
                        items.extend(frame.head.drain(..).map(SeqItem::Comment));
                        items.extend(frame.deferred.drain(..).map(SeqItem::Comment));
                        Node::Seq(items)
                    }
                };
                self.add_node(node, frame.start_line, frame.anchor)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The column of the `-` of a block sequence's first entry (granit reports the entry's
    /// column for sequences not indented under their key).
    fn dash_column(&self, line: usize, col: usize) -> usize {
        let Some(text) = self.lines.get(line.wrapping_sub(1)) else {
            return col;
        };
        let chars: Vec<char> = text.chars().collect();
        let mut c = col.min(chars.len());
        if chars.get(c) == Some(&'-') {
            return c;
        }
        while c > 0 {
            c -= 1;
            if chars[c] == '-' {
                return c;
            }
            if !chars[c].is_whitespace() {
                break;
            }
        }
        col
    }

    fn open(&mut self, kind: FrameKind, indent: Option<usize>, anchor: usize, line: usize) {
        // Comments between a key (or the document start) and this collection open it.
        let head = match self.stack.last_mut() {
            Some(parent) => std::mem::take(&mut parent.head),
            None => std::mem::take(&mut self.doc_head),
        };
        let mut frame = Frame {
            kind,
            indent,
            lines: Vec::new(),
            deferred: Vec::new(),
            head: Vec::new(),
            anchor,
            start_line: line,
        };
        for c in head {
            push_comment(&mut frame, c, line);
        }
        self.stack.push(frame);
    }

    fn add_node(&mut self, node: Node, line: usize, anchor: usize) -> Result<()> {
        if anchor != 0 {
            // The kept copy costs as much as the node itself.
            let size = node_size(&node);
            self.charge(size, line)?;
            self.anchors.insert(anchor, (node.clone(), size));
        }
        let Some(frame) = self.stack.last_mut() else {
            if self.doc_root.is_some() {
                return Err(parse_error(Some(line), "more than one root node"));
            }
            self.doc_root = Some(match node {
                Node::Map(mut items) if !self.doc_head.is_empty() => {
                    let head = std::mem::take(&mut self.doc_head);
                    items.splice(0..0, head.into_iter().map(MapItem::Comment));
                    Node::Map(items)
                }
                other => other,
            });
            return Ok(());
        };
        let head = std::mem::take(&mut frame.head);
        let deferred = std::mem::take(&mut frame.deferred);
        match &mut frame.kind {
            FrameKind::Map {
                items,
                pending_key,
                seen,
            } => match pending_key.take() {
                None => {
                    let key = match node {
                        Node::Scalar(Scalar::Str(s)) => s,
                        Node::Scalar(other) => {
                            return Err(parse_error(
                                Some(line),
                                format!(
                                    "mapping key {} is not a string (quote it)",
                                    other.canonical().unwrap_or_else(|| "null".into())
                                ),
                            ));
                        }
                        _ => {
                            return Err(parse_error(
                                Some(line),
                                "a mapping key must be a string, not a collection",
                            ));
                        }
                    };
                    *pending_key = Some((key, line));
                    // Comments collected before this key stay before it.
                    for c in head {
                        items.push(MapItem::Comment(c));
                        frame.lines.push(line);
                    }
                }
                Some((key, key_line)) => {
                    if !seen.insert(key.clone()) {
                        return Err(parse_error(
                            Some(key_line),
                            format!("duplicate mapping key {key:?}"),
                        ));
                    }
                    // A comment between `key:` and a scalar value: keep it above the key.
                    for c in head {
                        items.push(MapItem::Comment(c));
                        frame.lines.push(key_line);
                    }
                    items.push(MapItem::Entry(key, node));
                    frame.lines.push(key_line);
                    for c in deferred {
                        items.push(MapItem::Comment(c));
                        frame.lines.push(key_line);
                    }
                }
            },
            FrameKind::Seq { items } => {
                for c in head {
                    items.push(SeqItem::Comment(c));
                    frame.lines.push(line);
                }
                // A collection's leading comments are written above the dash of its item
                // (`lead_comments`), where they read back as the sequence's: keep them there
                // from the start, so that parse → emit → parse is stable.
                let mut node = node;
                for c in take_lead_comments(&mut node) {
                    items.push(SeqItem::Comment(c));
                    frame.lines.push(line);
                }
                items.push(SeqItem::Value(node));
                frame.lines.push(line);
                for c in deferred {
                    items.push(SeqItem::Comment(c));
                    frame.lines.push(line);
                }
            }
        }
        Ok(())
    }

    fn own_line_comment(&mut self, text: String, col: usize) {
        let top = self.stack.len();
        if top == 0 {
            self.doc_head.push(text);
            return;
        }
        // Innermost block collection whose entries are not right of the comment.
        let mut target = 0;
        for i in (0..top).rev() {
            match self.stack[i].indent {
                Some(indent) if indent <= col => {
                    target = i;
                    break;
                }
                _ => {}
            }
        }
        let is_top = target + 1 == top;
        let frame = &mut self.stack[target];
        let awaiting_value = matches!(
            &frame.kind,
            FrameKind::Map {
                pending_key: Some(_),
                ..
            }
        );
        if frame.child_open(is_top) {
            frame.deferred.push(text);
        } else if awaiting_value {
            frame.head.push(text);
        } else {
            let line = frame.lines.last().copied().unwrap_or(frame.start_line);
            push_comment(frame, text, line);
        }
    }

    fn right_comment(&mut self, text: String, line: usize) {
        for frame in self.stack.iter_mut().rev() {
            if let FrameKind::Map {
                pending_key: Some((_, key_line)),
                items,
                ..
            } = &mut frame.kind
                && *key_line == line
            {
                items.push(MapItem::Comment(text));
                frame.lines.push(line);
                return;
            }
            if let Some(pos) = frame.lines.iter().rposition(|&l| l == line) {
                // Insert before the entry that starts on this line.
                let first = frame.lines[..=pos]
                    .iter()
                    .rposition(|&l| l != line)
                    .map_or(0, |p| p + 1);
                match &mut frame.kind {
                    FrameKind::Map { items, .. } => items.insert(first, MapItem::Comment(text)),
                    FrameKind::Seq { items } => items.insert(first, SeqItem::Comment(text)),
                }
                frame.lines.insert(first, line);
                return;
            }
        }
        // Nothing on this line is open any more: treat it as an own-line comment.
        let col = usize::MAX;
        self.own_line_comment(text, col);
    }
}

fn push_comment(frame: &mut Frame, text: String, line: usize) {
    match &mut frame.kind {
        FrameKind::Map { items, .. } => items.push(MapItem::Comment(text)),
        FrameKind::Seq { items } => items.push(SeqItem::Comment(text)),
    }
    frame.lines.push(line);
}

fn scalar_of(
    value: &str,
    style: ScalarStyle,
    tag: Option<&granit_parser::Tag>,
    line: usize,
) -> Result<Scalar> {
    if let Some(tag) = tag
        && tag.handle() == CORE_TAG
    {
        return match tag.suffix() {
            "str" => Ok(Scalar::Str(value.to_string())),
            "binary" => {
                let compact: String = value.split_whitespace().collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map_err(|_| parse_error(Some(line), "!!binary value is not base64"))?;
                String::from_utf8(bytes)
                    .map(Scalar::Str)
                    .map_err(|_| parse_error(Some(line), "!!binary value is not UTF-8 text"))
            }
            "null" => Ok(Scalar::Null),
            "bool" | "int" | "float" | "timestamp" => {
                let s = resolve_plain(value);
                let ok = matches!(
                    (tag.suffix(), &s),
                    ("bool", Scalar::Bool(_))
                        | ("int", Scalar::Int(_))
                        | ("float", Scalar::Float(_) | Scalar::Int(_))
                        | ("timestamp", Scalar::Time(_))
                );
                if !ok {
                    return Err(parse_error(
                        Some(line),
                        format!("value does not match its tag !!{}", tag.suffix()),
                    ));
                }
                Ok(match (tag.suffix(), s) {
                    ("float", Scalar::Int(i)) => Scalar::Float(i as f64),
                    (_, s) => s,
                })
            }
            _ => Ok(Scalar::Str(value.to_string())),
        };
    }
    Ok(match style {
        ScalarStyle::Plain => resolve_plain(value),
        _ => Scalar::Str(value.to_string()),
    })
}

// ---------------------------------------------------------------------------------------------
// Writer

pub(super) fn emit(docs: &[Document], indent: usize) -> String {
    let mut out = String::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let mut w = Writer {
            out: &mut out,
            indent: indent.max(1),
        };
        w.root(&doc.root);
    }
    out
}

struct Writer<'a> {
    out: &'a mut String,
    indent: usize,
}

impl Writer<'_> {
    fn root(&mut self, node: &Node) {
        match node {
            Node::Map(items) if !items.is_empty() => self.map(items, 0),
            Node::Seq(items) if !items.is_empty() => self.seq(items, 0),
            other => {
                self.inline(other, 0);
                self.out.push('\n');
            }
        }
    }

    fn pad(&mut self, n: usize) {
        self.out.extend(std::iter::repeat_n(' ', n));
    }

    fn comment(&mut self, text: &str, col: usize) {
        self.pad(col);
        // Comments never span lines; a newline smuggled into one would create YAML.
        self.comment_inline(text);
    }

    fn map(&mut self, items: &[MapItem], col: usize) {
        for item in items {
            match item {
                MapItem::Comment(c) => self.comment(c, col),
                MapItem::Entry(k, v) => {
                    self.pad(col);
                    self.entry(k, v, col);
                }
            }
        }
    }

    /// `key: value` after the indentation was written.
    fn entry(&mut self, key: &str, value: &Node, col: usize) {
        self.key(key);
        match value {
            Node::Map(items) if !items.is_empty() => {
                self.out.push_str(":\n");
                self.map(items, col + self.indent);
            }
            Node::Seq(items) if !items.is_empty() => {
                self.out.push_str(":\n");
                self.seq(items, col + self.indent);
            }
            other => {
                self.out.push(':');
                self.inline_after(other, col + self.indent);
            }
        }
    }

    fn key(&mut self, key: &str) {
        if needs_quotes(key) || key.contains('\n') {
            self.out.push_str(&double_quoted(key));
        } else {
            self.out.push_str(key);
        }
    }

    fn seq(&mut self, items: &[SeqItem], col: usize) {
        for item in items {
            match item {
                SeqItem::Comment(c) => self.comment(c, col),
                SeqItem::Value(v) => {
                    self.pad(col);
                    self.seq_value(v, col);
                }
            }
        }
    }

    /// `- value` after the indentation was written: the comments leading the value first, above
    /// the dash.
    fn seq_value(&mut self, value: &Node, col: usize) {
        for c in lead_comments(value) {
            self.comment_inline(c);
            self.pad(col);
        }
        self.seq_value_body(value, col);
    }

    /// `- value` once the value's leading comments ([`lead_comments`]) are written.
    fn seq_value_body(&mut self, value: &Node, col: usize) {
        let inner = col + 2;
        match value {
            Node::Map(items) if !items.is_empty() => {
                // The first entry shares the dash's line.
                let lead = items
                    .iter()
                    .take_while(|i| matches!(i, MapItem::Comment(_)))
                    .count();
                self.out.push_str("- ");
                let mut first = true;
                for item in &items[lead..] {
                    match item {
                        MapItem::Comment(c) => self.comment(c, inner),
                        MapItem::Entry(k, v) => {
                            if !first {
                                self.pad(inner);
                            }
                            first = false;
                            self.entry(k, v, inner);
                        }
                    }
                }
                if first {
                    self.out.push_str("{}\n");
                }
            }
            Node::Seq(items) if !items.is_empty() => {
                // The first item shares the dash's line (`- - a`); its leading comments were
                // written above, with ours.
                let lead = items
                    .iter()
                    .take_while(|i| matches!(i, SeqItem::Comment(_)))
                    .count();
                self.out.push_str("- ");
                let mut first = true;
                for item in &items[lead..] {
                    match item {
                        SeqItem::Comment(c) => self.comment(c, inner),
                        SeqItem::Value(v) if first => {
                            first = false;
                            self.seq_value_body(v, inner);
                        }
                        SeqItem::Value(v) => {
                            self.pad(inner);
                            self.seq_value(v, inner);
                        }
                    }
                }
                if first {
                    self.out.push_str("[]\n");
                }
            }
            other => {
                self.out.push('-');
                self.inline_after(other, inner)
            }
        }
    }

    /// A comment at the current position (indentation already written).
    fn comment_inline(&mut self, text: &str) {
        self.out.push('#');
        self.out.push_str(&text.replace(['\n', '\r'], " "));
        self.out.push('\n');
    }

    /// A scalar or empty collection after `key:` or `-` (writes the separating space).
    fn inline_after(&mut self, node: &Node, block_col: usize) {
        match node {
            Node::Scalar(Scalar::Str(s)) if block_literal_ok(s) => {
                self.out.push(' ');
                self.literal(s, block_col);
            }
            other => {
                self.out.push(' ');
                self.inline(other, block_col);
                self.out.push('\n');
            }
        }
    }

    fn inline(&mut self, node: &Node, _col: usize) {
        match node {
            Node::Map(_) => self.out.push_str("{}"),
            Node::Seq(_) => self.out.push_str("[]"),
            Node::Scalar(s) => self.scalar(s),
        }
    }

    fn scalar(&mut self, s: &Scalar) {
        match s {
            Scalar::Null => self.out.push_str("null"),
            Scalar::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Scalar::Int(i) => self.out.push_str(&i.to_string()),
            Scalar::Float(f) => self.out.push_str(&yaml_float(*f)),
            Scalar::Time(t) => self.out.push_str(t),
            Scalar::Str(s) => {
                if needs_quotes(s) {
                    self.out.push_str(&double_quoted(s));
                } else {
                    self.out.push_str(s);
                }
            }
        }
    }

    /// A literal block scalar (`|`, `|-`, `|+`), content indented at `col`.
    fn literal(&mut self, s: &str, col: usize) {
        let trailing = s.len() - s.trim_end_matches('\n').len();
        let chomp = match trailing {
            0 => "-",
            1 => "",
            _ => "+",
        };
        self.out.push('|');
        if s.starts_with(' ') {
            self.out.push_str(&self.indent.to_string());
        }
        self.out.push_str(chomp);
        self.out.push('\n');
        let body = s.strip_suffix('\n').unwrap_or(s);
        for line in body.split('\n') {
            if !line.is_empty() {
                self.pad(col);
                self.out.push_str(line);
            }
            self.out.push('\n');
        }
    }
}

/// The comments that lead `value` written as a sequence item: they go above its dash (the same
/// place for sops, whose comment paths leave out sequence indices). A sequence's first item shares
/// that dash's line (`- - a`), so its leading comments go there too (where a parser reads them
/// back).
fn lead_comments(value: &Node) -> Vec<&str> {
    let mut out = Vec::new();
    let mut v = value;
    loop {
        match v {
            Node::Map(items) => {
                out.extend(items.iter().map_while(|i| match i {
                    MapItem::Comment(c) => Some(c.as_str()),
                    MapItem::Entry(..) => None,
                }));
                return out;
            }
            Node::Seq(items) => {
                let mut next = None;
                for item in items {
                    match item {
                        SeqItem::Comment(c) => out.push(c.as_str()),
                        SeqItem::Value(first) => {
                            next = Some(first);
                            break;
                        }
                    }
                }
                match next {
                    Some(first) => v = first,
                    None => return out,
                }
            }
            Node::Scalar(_) => return out,
        }
    }
}

/// Removes and returns the comments [`lead_comments`] would write above a sequence dash.
fn take_lead_comments(node: &mut Node) -> Vec<String> {
    match node {
        Node::Map(items) => {
            let n = items
                .iter()
                .take_while(|i| matches!(i, MapItem::Comment(_)))
                .count();
            items
                .drain(..n)
                .filter_map(|i| match i {
                    MapItem::Comment(c) => Some(c),
                    MapItem::Entry(..) => None,
                })
                .collect()
        }
        Node::Seq(items) => {
            let n = items
                .iter()
                .take_while(|i| matches!(i, SeqItem::Comment(_)))
                .count();
            let mut out: Vec<String> = items
                .drain(..n)
                .filter_map(|i| match i {
                    SeqItem::Comment(c) => Some(c),
                    SeqItem::Value(_) => None,
                })
                .collect();
            if let Some(SeqItem::Value(first)) = items.first_mut() {
                out.extend(take_lead_comments(first));
            }
            out
        }
        Node::Scalar(_) => Vec::new(),
    }
}

/// Multi-line strings are written as literal blocks when every character survives one.
fn block_literal_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with('\n')
        && !s.chars().any(|c| c != '\n' && c != '\t' && needs_escape(c))
        && !s.split('\n').any(|l| l.ends_with(' ') || l.ends_with('\t'))
        && !s.starts_with('\t')
}

fn yaml_float(f: f64) -> String {
    if f.is_nan() {
        ".nan".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        }
    } else {
        let s = format!("{f}");
        // Keep it a float when read back.
        if s.contains('.') || s.contains('e') {
            s
        } else {
            format!("{s}.0")
        }
    }
}

#[cfg(test)]
#[path = "yaml_tests.rs"]
mod tests;
