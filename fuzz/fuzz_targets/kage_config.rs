//! `.kage.yaml`: the CLI's own `Config::parse` (environments, globs, recipients).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = kage_fuzz::config::Config::parse(Path::new("/repo/.kage.yaml"), data) {
        let _ = config.env_for_path(Path::new("/repo/clusters/prod/db.yaml"));
        let _ = config.env("prod");
    }
});
