//! Property tests: emit -> parse is the identity for both stores, encrypt -> decrypt is the
//! identity for SOPS documents and for sealed values.

use std::sync::LazyLock;

use kage_core::document::{
    Document, EmitOptions, Format, MapItem, Node, Scalar, SeqItem, emit, parse,
};
use kage_core::keys::{Identity, KeyRing};
use kage_core::sealed::{Binding, Scope, open, seal};
use kage_core::sops::{EncryptOptions, Selection, decrypt, encrypt};
use proptest::prelude::*;

static KEY: LazyLock<Identity> = LazyLock::new(Identity::generate);

fn scalar() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        Just(Scalar::Null),
        any::<bool>().prop_map(Scalar::Bool),
        any::<i64>().prop_map(Scalar::Int),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Scalar::Float),
        ".*".prop_map(Scalar::Str),
        "[a-z0-9 :#\\-\"'\\n]{0,20}".prop_map(Scalar::Str),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof!["[a-zA-Z_][a-zA-Z0-9_.-]{0,10}", ".{1,8}"]
}

fn node(comments: bool) -> impl Strategy<Value = Node> {
    let leaf = scalar().prop_map(Node::Scalar);
    leaf.prop_recursive(4, 48, 6, move |inner| {
        let comment = "[ a-zA-Z0-9]{0,12}";
        prop_oneof![
            prop::collection::vec((key(), inner.clone(), prop::option::of(comment)), 0..5)
                .prop_map(move |entries| {
                    let mut items = Vec::new();
                    let mut seen = std::collections::HashSet::new();
                    for (k, v, c) in entries {
                        if !seen.insert(k.clone()) {
                            continue;
                        }
                        if let (true, Some(c)) = (comments, c) {
                            items.push(MapItem::Comment(c));
                        }
                        items.push(MapItem::Entry(k, v));
                    }
                    Node::Map(items)
                }),
            prop::collection::vec(inner, 0..5)
                .prop_map(|v| Node::Seq(v.into_iter().map(SeqItem::Value).collect())),
        ]
    })
}

fn map_root(comments: bool) -> impl Strategy<Value = Document> {
    prop::collection::vec((key(), node(comments)), 1..5).prop_map(|entries| {
        let mut items = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (k, v) in entries {
            if k != "sops" && seen.insert(k.clone()) {
                items.push(MapItem::Entry(k, v));
            }
        }
        if items.is_empty() {
            items.push(MapItem::Entry("k".into(), Node::string("v")));
        }
        Document::new(Node::Map(items))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn yaml_emit_parse_identity(doc in map_root(true)) {
        let text = emit(std::slice::from_ref(&doc), Format::Yaml, &EmitOptions::default()).unwrap();
        let back = parse(text.as_bytes(), Format::Yaml).unwrap();
        // Emission is a fixed point after one round (comments above sequence items move
        // above their dash); values are equal at once.
        prop_assert_eq!(back[0].to_json_value(), doc.to_json_value());
        let again = emit(&back, Format::Yaml, &EmitOptions::default()).unwrap();
        prop_assert_eq!(&again, &text);
    }

    #[test]
    fn json_emit_parse_identity(doc in map_root(false)) {
        let text = emit(std::slice::from_ref(&doc), Format::Json, &EmitOptions::sops()).unwrap();
        let back = parse(text.as_bytes(), Format::Json).unwrap();
        prop_assert_eq!(back[0].to_json_value(), doc.to_json_value());
    }

    #[test]
    fn sops_encrypt_decrypt_identity(doc in map_root(true), mac_only in any::<bool>()) {
        let opts = EncryptOptions {
            key_groups: vec![vec![KEY.recipient()]],
            shamir_threshold: 0,
            selection: Selection::default(),
            mac_only_encrypted: mac_only,
        };
        let enc = encrypt(std::slice::from_ref(&doc), &opts).unwrap();
        // Through text, as files travel.
        for format in [Format::Yaml, Format::Json] {
            let text = emit(&enc, format, &EmitOptions::sops()).unwrap();
            let parsed = parse(text.as_bytes(), format).unwrap();
            let plain = decrypt(&parsed, std::slice::from_ref(&KEY)).unwrap();
            prop_assert_eq!(plain[0].to_json_value(), doc.to_json_value());
        }
    }

    #[test]
    fn sealed_value_identity(
        value in prop::collection::vec(any::<u8>(), 0..512),
        scope in prop_oneof![Just(Scope::Strict), Just(Scope::Namespace), Just(Scope::Cluster)],
        ns in "[a-z0-9-]{1,20}",
        name in "[a-z0-9.-]{1,20}",
        data_key in "[-._a-zA-Z0-9]{1,30}",
    ) {
        let binding = Binding::new(scope, &ns, &name, &data_key);
        let sealed = seal(&value, &binding, &[KEY.recipient()]).unwrap();
        let ring = KeyRing::from_identities([KEY.clone()]);
        prop_assert_eq!(&open(&sealed, &binding, &ring).unwrap()[..], &value[..]);
    }
}
