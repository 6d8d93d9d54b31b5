//! Manifest reading: the CLI's typed reader of Secret and AgeSecret streams, then the Secret
//! checks `kage seal` and `kage validate` run.
#![no_main]

use kage_fuzz::{agesecret::AgeSecret, manifest, raw};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((_, docs)) = raw::parse_docs(data) else {
        return;
    };
    for doc in raw::flatten(docs) {
        match manifest::kind_of(&doc) {
            manifest::Kind::AgeSecret => {
                let _ = AgeSecret::from_raw(&doc);
            }
            _ => {
                if let Ok(secret) = manifest::secret_from_raw(&doc) {
                    let _ = manifest::validate(&secret);
                }
            }
        }
    }
});
