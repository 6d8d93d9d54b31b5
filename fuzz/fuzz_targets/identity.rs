//! Identity and recipient files (`-i`, `KAGE_IDENTITY`, `--recipients-file`).
#![no_main]

use kage_core::keys::{Identity, Recipient, parse_identity_file, parse_recipients};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ids) = parse_identity_file(text) {
        for id in ids {
            // An identity that parses has a recipient that parses back to itself.
            let r: Recipient = id.recipient().to_string().parse().expect("own recipient");
            assert_eq!(r, id.recipient());
            assert_eq!(r.kid(), id.kid());
        }
    }
    if let Ok(rs) = parse_recipients(text) {
        for r in rs {
            assert_eq!(r.to_string().parse::<Recipient>().ok(), Some(r));
        }
    }
    let _ = Identity::parse(text);
});
