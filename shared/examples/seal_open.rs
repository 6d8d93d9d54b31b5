//! Seal a value read from stdin to a recipient, or open one with an identity file.
//!
//! `seal_open seal age1… NAMESPACE NAME KEY < value` prints `kage:v1:…`;
//! `seal_open open KEYFILE NAMESPACE NAME KEY < sealed` prints the value.

use std::io::{Read, Write};

use kage_core::keys::{KeyRing, parse_identity_file};
use kage_core::sealed::{Binding, Scope, open, seal};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, key, ns, name, data_key] = args.as_slice() else {
        return Err("usage: seal_open seal|open RECIPIENT|KEYFILE NAMESPACE NAME KEY".into());
    };
    let binding = Binding::new(Scope::Strict, ns, name, data_key);
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input)?;
    let mut out = std::io::stdout();
    if mode == "seal" {
        writeln!(out, "{}", seal(&input, &binding, &[key.parse()?])?)?;
    } else {
        let ring = KeyRing::from_identities(parse_identity_file(&std::fs::read_to_string(key)?)?);
        let sealed = String::from_utf8(input)?;
        out.write_all(&open(sealed.trim(), &binding, &ring)?)?;
    }
    Ok(())
}
