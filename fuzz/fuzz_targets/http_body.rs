//! The controller's HTTP request bodies (`/v1/verify`, `/v1/reencrypt`): the body parser, then
//! the checks and the opening both endpoints run.
#![no_main]

use std::sync::LazyLock;

use http::{HeaderMap, HeaderValue, header};
use kage_controller::decrypt::{self, Options};
use kage_controller::http::parse_body;
use kage_core::keys::KeyRing;
use libfuzzer_sys::fuzz_target;

static RING: LazyLock<KeyRing> = LazyLock::new(kage_fuzz::ring);

fuzz_target!(|data: &[u8]| {
    // The first byte picks the declared content type.
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    match first % 3 {
        0 => {}
        1 => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        _ => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/yaml"),
            );
        }
    }
    let Ok((ags, _extra, _wire)) = parse_body(&headers, body) else {
        return;
    };
    if decrypt::validate(&ags).is_ok() {
        let _ = decrypt::open(&ags, &RING, Options::default());
    }
});
