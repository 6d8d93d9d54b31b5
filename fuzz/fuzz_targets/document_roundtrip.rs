//! The document tree: parse → emit → parse gives the same tree (the SOPS MAC and every
//! rewrite of a file depend on it), in both formats.
#![no_main]

use kage_core::document::{self, EmitOptions, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let format = Format::detect(data);
    let Ok(docs) = document::parse(data, format) else {
        return;
    };
    for options in [EmitOptions::default(), EmitOptions::sops()] {
        let Ok(text) = document::emit(&docs, format, &options) else {
            // Only JSON refuses, and only a stream of several documents.
            assert_eq!(format, Format::Json);
            continue;
        };
        let back = document::parse(text.as_bytes(), format)
            .unwrap_or_else(|e| panic!("emitted text does not parse: {e}\n{text}"));
        assert_eq!(back, docs, "round trip changed the tree:\n{text}");
        // And once more through the JSON value conversion (what the controller applies).
        for d in &docs {
            let _ = d.to_json_value();
        }
    }
});
