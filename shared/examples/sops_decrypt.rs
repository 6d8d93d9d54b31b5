//! Decrypt a SOPS file with an age identity file: the smallest complete use of the engine.
//!
//! `cargo run --example sops_decrypt -- FILE KEYFILE` (the bench script times it against sops).

use kage_core::document::Format;
use kage_core::keys::parse_identity_file;
use kage_core::sops::decrypt_bytes;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(file), Some(keys)) = (args.next(), args.next()) else {
        return Err("usage: sops_decrypt FILE KEYFILE".into());
    };
    let bytes = std::fs::read(&file)?;
    let identities = parse_identity_file(&std::fs::read_to_string(keys)?)?;
    let plain = decrypt_bytes(&bytes, Format::detect(&bytes), &identities)?;
    use std::io::Write;
    std::io::stdout().write_all(&plain)?;
    Ok(())
}
