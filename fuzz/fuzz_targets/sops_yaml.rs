//! The SOPS reader and decryptor on YAML input (what `kage unseal`/`edit`/`set` run on a file
//! with a `sops:` key, and the controller on a SOPS AgeSecret).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kage_fuzz::sops(data, kage_core::document::Format::Yaml));
