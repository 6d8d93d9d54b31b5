//! The SOPS reader and decryptor on JSON input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kage_fuzz::sops(data, kage_core::document::Format::Json));
