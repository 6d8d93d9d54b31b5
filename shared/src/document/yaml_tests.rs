//! Unit tests of the YAML reader and emitter (kept apart so yaml.rs holds the code alone).

use super::*;

fn round(src: &str) -> String {
    emit(&parse(src).unwrap(), 2)
}

#[test]
fn comments_attach_like_go_yaml() {
    let src = "# top\nserver:\n  host: x  # inline\n  # before list\n  list:\n  # in list\n  - a\n  - b # after b\n  m:\n    k: v\n    # trailing in m\n# root\nother: 1\n";
    let docs = parse(src).unwrap();
    let root = &docs[0].root;
    let Node::Map(items) = root else { panic!() };
    assert_eq!(items[0], MapItem::Comment(" top".into()));
    let server = root.get("server").unwrap();
    let Node::Map(s) = server else { panic!() };
    assert_eq!(s[0], MapItem::Comment(" inline".into()));
    assert!(matches!(&s[1], MapItem::Entry(k, _) if k == "host"));
    assert_eq!(s[2], MapItem::Comment(" before list".into()));
    let Node::Seq(list) = server.get("list").unwrap() else {
        panic!()
    };
    assert_eq!(list[0], SeqItem::Comment(" in list".into()));
    assert_eq!(list[2], SeqItem::Comment(" after b".into()));
    let Node::Map(m) = server.get("m").unwrap() else {
        panic!()
    };
    assert_eq!(m[1], MapItem::Comment(" trailing in m".into()));
    // The root comment comes after `server`, before `other`.
    assert_eq!(items[2], MapItem::Comment(" root".into()));
    assert!(matches!(&items[3], MapItem::Entry(k, _) if k == "other"));
}

#[test]
fn emit_round_trips() {
    let src = "a: 1\nb:\n  - x\n  - k: v\n    j: w\n  - - 1\n    - 2\nc: |\n  line one\n  line two\nd: \"true\"\ne: {}\nf: []\ng: null\n";
    assert_eq!(round(src), src);
    let again = round(&round(src));
    assert_eq!(again, src);
}

#[test]
fn multi_document_and_anchors() {
    let docs = parse("a: &x [1, 2]\nb: *x\n---\nc: true\n").unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].root.get("a"), docs[0].root.get("b"));
    assert_eq!(
        emit(&docs, 4),
        "a:\n    - 1\n    - 2\nb:\n    - 1\n    - 2\n---\nc: true\n"
    );
}

fn limit_of(text: &str) -> Option<Limit> {
    match parse(text) {
        Err(Error::Limit { limit, .. }) => Some(limit),
        Ok(_) => None,
        Err(e) => panic!("not a limit error: {e}"),
    }
}

#[test]
fn alias_bombs_are_refused_before_expansion() {
    // 9^10 nodes if expanded; each level is charged before its copy exists.
    let mut bomb = String::from("sops: {}\na0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    assert_eq!(limit_of(&bomb), Some(Limit::Nodes));
    let e = parse(&bomb).unwrap_err().to_string();
    assert!(
        e.starts_with("YAML input exceeds the node count limit"),
        "{e}"
    );
    // Many cheap aliases hit the alias count instead.
    let many = format!(
        "a: &a x\nb: [{}]\n",
        vec!["*a"; limits::MAX_ALIASES + 1].join(", ")
    );
    assert_eq!(limit_of(&many), Some(Limit::Aliases));
    // A few aliases are fine.
    assert_eq!(limit_of("a: &a {k: v}\nb: *a\nc: *a\n"), None);
}

#[test]
fn depth_and_document_limits() {
    let nested = |n: usize| format!("{}x{}", "[".repeat(n), "]".repeat(n));
    assert_eq!(limit_of(&nested(limits::MAX_DEPTH)), None);
    assert_eq!(limit_of(&nested(limits::MAX_DEPTH + 1)), Some(Limit::Depth));
    let block: String = (0..=limits::MAX_DEPTH)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    assert_eq!(limit_of(&block), Some(Limit::Depth));
    let docs = |n: usize| "---\na: 1\n".repeat(n);
    assert_eq!(limit_of(&docs(limits::MAX_DOCUMENTS)), None);
    let e = parse(&docs(limits::MAX_DOCUMENTS + 1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("document count limit (1024 documents)"), "{e}");
}

/// Found by the `document_roundtrip` fuzz target: a same-line comment on the first item of a
/// nested collection (`- - a #c`) was read into the inner sequence, written above the outer
/// dash, and read back into the outer one.
#[test]
fn comments_leading_nested_items_are_stable() {
    for src in [
        "- - a #c\n  - b\n",
        "m:\n  - - x\n  - - a #c\n    - b\n",
        "- k: v #c\n  j: w\n",
        "- - - a #c\n",
        "- #c\n  - a\n",
    ] {
        let once = parse(src).unwrap();
        let text = emit(&once, 2);
        assert_eq!(parse(&text).unwrap(), once, "{src:?} -> {text:?}");
        assert_eq!(emit(&parse(&text).unwrap(), 2), text);
    }
}

#[test]
fn errors_name_the_line() {
    let e = parse("a: 1\nb: [\n").unwrap_err().to_string();
    assert!(e.contains("YAML"), "{e}");
    let e = parse("a: 1\n1: x\n").unwrap_err().to_string();
    assert!(e.contains("line 2") && e.contains("not a string"), "{e}");
    let e = parse("a: 1\na: 2\n").unwrap_err().to_string();
    assert!(e.contains("duplicate"), "{e}");
    assert!(parse("").is_err());
}

#[test]
fn strings_survive_emission() {
    for s in [
        "",
        "true",
        "yes",
        "a: b",
        "multi\nline\n",
        "trailing\n\n",
        "no newline\nat end",
        " leading",
        "tab\there",
        "quote\"s",
        "#hash",
        "- dash",
        "é ü 日本",
        "\u{1}ctl",
        "non\u{fffe}character",
        "line\u{2028}separator\nand more",
    ] {
        let doc = Document::new(Node::Map(vec![MapItem::Entry("k".into(), Node::string(s))]));
        let text = emit(std::slice::from_ref(&doc), 2);
        let back = parse(&text).unwrap();
        assert_eq!(back[0].root.get("k").unwrap().as_str(), Some(s), "{text}");
    }
}

#[test]
fn comments_leading_a_nested_sequence_item_go_above_the_shared_dash() {
    // Found by the emit/parse/emit property: a map with a leading comment, first item of a
    // sequence that is itself the first item of a sequence.
    let inner = Node::Map(vec![
        MapItem::Comment(" c".into()),
        MapItem::Entry("k".into(), Node::string("v")),
    ]);
    let doc = Document::new(Node::Map(vec![MapItem::Entry(
        "a".into(),
        Node::Seq(vec![SeqItem::Value(Node::Seq(vec![SeqItem::Value(inner)]))]),
    )]));
    let text = emit(std::slice::from_ref(&doc), 2);
    assert_eq!(text, "a:\n  # c\n  - - k: v\n");
    assert_eq!(round(&text), text);
}

#[test]
fn zeroize_wipes_every_value_and_comment() {
    use zeroize::Zeroize;
    let mut docs =
        parse("# secret note\na: hunter2\nb: [x, 2, 2001-12-14t21:59:43.10-05:00]\nc: {d: true}\n")
            .unwrap();
    docs.iter_mut().for_each(Zeroize::zeroize);
    let text = emit(&docs, 2);
    for leaked in ["secret", "hunter2", "x", "2001", "true"] {
        assert!(!text.contains(leaked), "{leaked} left in {text}");
    }
    assert!(text.contains("a: null"), "{text}");
}
