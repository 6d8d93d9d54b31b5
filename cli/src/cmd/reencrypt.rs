//! `kage reencrypt`: re-seal files in place to their environment's current recipients.
//! Values already sealed to exactly those recipients keep their ciphertext; a file with nothing
//! to change is not written.

use anyhow::{Context, Result};
use kage_core::keys::Kid;
use kage_core::sealed;

use crate::args::ReencryptArgs;
use crate::cmd::Global;
use crate::cmd::set::{Sealed, load};
use crate::exit::Exit;
use crate::io::{Sensitivity, write_atomic};
use crate::keysrc::{Resolver, require_identities, ring};
use crate::sopsdoc;
use crate::tree;

/// Runs `kage reencrypt`.
pub fn run(args: ReencryptArgs, global: &Global) -> Result<Exit> {
    let ids = require_identities(&args.identities)?;
    let ring = ring(&ids);
    let resolver = Resolver::new(&args.recipients, global.config.as_deref())?;
    let bar = crate::progress::bar(args.files.len());
    let mut outputs = Vec::new();
    for file in &args.files {
        let target = resolver
            .target(Some(file))
            .with_context(|| file.display().to_string())?;
        let bytes = crate::io::read_file(file)?;
        let changed = match load(file, &bytes)? {
            Sealed::AgeSecret(mut ags, format) => {
                let mut want: Vec<Kid> = target.recipients.iter().map(|r| r.kid()).collect();
                want.sort();
                want.dedup();
                let mut n = 0;
                let keys: Vec<String> = ags.encrypted.keys().cloned().collect();
                for k in keys {
                    let v = ags.encrypted[&k].clone();
                    let mut have = sealed::kids_of(&v)
                        .with_context(|| format!("{}: spec.encryptedData.{k}", file.display()))?;
                    have.sort();
                    have.dedup();
                    if have == want {
                        continue;
                    }
                    let plain = ags
                        .open_value(&k, &v, &ring)
                        .with_context(|| file.display().to_string())?;
                    ags.seal_value(&k, &plain, &target.recipients)?;
                    n += 1;
                }
                (n > 0).then(|| (n, tree::emit(&[ags.to_node()], format)))
            }
            Sealed::Sops => sopsdoc::reencrypt(&bytes, &ids, &target, args.rotate_data_key)
                .with_context(|| file.display().to_string())?
                .map(|t| (0, t)),
        };
        match changed {
            Some((n, text)) => outputs.push((file.clone(), n, text)),
            None => eprintln!("{}: already current", file.display()),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    for (file, n, text) in outputs {
        write_atomic(&file, text.as_bytes(), Sensitivity::Public)?;
        match n {
            0 => eprintln!("{}: re-encrypted", file.display()),
            1 => eprintln!("{}: re-encrypted (1 value)", file.display()),
            n => eprintln!("{}: re-encrypted ({n} values)", file.display()),
        }
    }
    Ok(Exit::Ok)
}
