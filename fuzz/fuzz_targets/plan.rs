//! The reconcile plan: an AgeSecret and, after a NUL byte, an existing Secret (JSON, or YAML so
//! the repository's fixtures seed it), as the API server would hand them over; the plan must
//! decide without panicking.
#![no_main]

use std::sync::LazyLock;

use k8s_openapi::api::core::v1::Secret;
use kage_controller::decrypt::Options;
use kage_controller::plan::{self, Inputs};
use kage_core::api::v1alpha1::AgeSecret;
use kage_core::keys::KeyRing;
use libfuzzer_sys::fuzz_target;

static RING: LazyLock<KeyRing> = LazyLock::new(kage_fuzz::ring);

fn object<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    if bytes.first() == Some(&b'{') {
        kage_core::limits::scan_json(std::str::from_utf8(bytes).ok()?).ok()?;
        serde_json::from_slice(bytes).ok()
    } else {
        serde_saphyr::from_slice_with_options(bytes, kage_core::limits::yaml_options()).ok()
    }
}

fuzz_target!(|data: &[u8]| {
    let (ags, existing) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Some(ags) = object::<AgeSecret>(ags) else {
        return;
    };
    let existing: Option<Secret> = existing.and_then(object);
    for options in [
        Options::default(),
        Options {
            allow_unbound_sops: true,
        },
    ] {
        let p = plan::plan(&Inputs {
            ags: &ags,
            ring: &RING,
            existing: existing.as_ref(),
            options,
            controller_namespace: "kage-system",
            now: jiff::Timestamp::UNIX_EPOCH,
        });
        // Ready exactly when values were decrypted or the AgeSecret holds none.
        if !p.ready() {
            assert_eq!(p.decrypted_values, 0);
        }
    }
});
