//! The sealed-value parser and opener: `kage:v1:<kids>:<base64 age file>` and its binding.
#![no_main]

use std::sync::LazyLock;

use kage_core::keys::KeyRing;
use kage_core::sealed::{self, SealedValue};
use libfuzzer_sys::fuzz_target;

static RING: LazyLock<KeyRing> = LazyLock::new(kage_fuzz::ring);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = SealedValue::parse(text);
    assert_eq!(parsed.is_ok(), sealed::kids_of(text).is_ok());
    let _ = sealed::is_sealed(text);
    let _ = sealed::parse_binding_text(text);
    if let Ok((binding, value)) = sealed::open_unchecked(text, &RING) {
        // What opened once opens again against its own binding, with the same plaintext.
        let again = sealed::open(text, &binding, &RING).expect("reopens with its binding");
        assert_eq!(*again, *value);
    }
});
