//! `kage set` and `kage unset`: change one value of a sealed file in place.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use zeroize::Zeroizing;

use crate::agesecret::AgeSecret;
use crate::args::{IdentityArgs, SetArgs, UnsetArgs};
use crate::cmd::Global;
use crate::exit::{Exit, user};
use crate::io::{Sensitivity, write_atomic};
use crate::keysrc::{Resolver, require_identities};
use crate::manifest::{self, Kind};
use crate::sopsdoc;
use crate::tree::{self, Format};

/// A file that holds exactly one sealed AgeSecret, or a SOPS file.
pub enum Sealed {
    /// A sealed-form AgeSecret and its serialisation.
    AgeSecret(Box<AgeSecret>, Format),
    /// A SOPS file (any document).
    Sops,
}

/// Reads a file that `set`, `unset`, `edit` and `reencrypt` change in place.
pub fn load(path: &Path, bytes: &[u8]) -> Result<Sealed> {
    if sopsdoc::is_sops(bytes) {
        return Ok(Sealed::Sops);
    }
    let (format, values) =
        crate::raw::parse_docs(bytes).with_context(|| path.display().to_string())?;
    match values.as_slice() {
        [v] if matches!(manifest::kind_of(v), Kind::AgeSecret) => {
            let ags = AgeSecret::from_raw(v).with_context(|| path.display().to_string())?;
            Ok(Sealed::AgeSecret(Box::new(ags), format))
        }
        [v] if matches!(manifest::kind_of(v), Kind::Secret) => {
            Err(user(format!("{} is a plaintext Secret", path.display()))
                .hint("seal it first with `kage seal`")
                .into())
        }
        [_] => Err(user(format!(
            "{} is neither an AgeSecret nor a SOPS file",
            path.display()
        ))
        .into()),
        many => Err(user(format!(
            "{} holds {} documents; this command changes files with one AgeSecret",
            path.display(),
            many.len()
        ))
        .into()),
    }
}

/// Runs `kage set`.
pub fn run_set(args: SetArgs, global: &Global) -> Result<Exit> {
    let value: Zeroizing<Vec<u8>> = match (&args.value, &args.from_file) {
        (_, Some(f)) => Zeroizing::new(crate::io::read_file(f)?),
        (Some(v), None) if v == "-" => {
            let mut buf = Zeroizing::new(Vec::new());
            std::io::stdin()
                .lock()
                .take(crate::io::MAX_INPUT)
                .read_to_end(&mut buf)
                .context("reading stdin")?;
            buf
        }
        (Some(v), None) => Zeroizing::new(v.as_bytes().to_vec()),
        (None, None) => unreachable!("clap requires VALUE or --from-file"),
    };
    let bytes = crate::io::read_file(&args.file)?;
    let out = match load(&args.file, &bytes)? {
        Sealed::AgeSecret(mut ags, format) => {
            let resolver = Resolver::new(&args.recipients, global.config.as_deref())?;
            let target = resolver
                .target(Some(&args.file))
                .with_context(|| args.file.display().to_string())?;
            let mut check = manifest::Secret {
                name: ags.name.clone(),
                namespace: ags.namespace.clone(),
                ..Default::default()
            };
            check.data.insert(args.key.clone(), value.clone());
            manifest::validate(&check)?;
            ags.seal_value(&args.key, &value, &target.recipients)?;
            tree::emit(&[ags.to_node()], format)
        }
        Sealed::Sops => {
            let ids = require_identities(&args.identities)?;
            sopsdoc::set(&bytes, &args.key, Some(&value), &ids)
                .with_context(|| args.file.display().to_string())?
        }
    };
    write_atomic(&args.file, out.as_bytes(), Sensitivity::Public)?;
    Ok(Exit::Ok)
}

/// Runs `kage unset`.
pub fn run_unset(args: UnsetArgs, _: &Global) -> Result<Exit> {
    let bytes = crate::io::read_file(&args.file)?;
    let out = match load(&args.file, &bytes)? {
        Sealed::AgeSecret(mut ags, format) => {
            if ags.encrypted.remove(&args.key).is_none() {
                return Err(no_such_key(&args.file, &args.key));
            }
            tree::emit(&[ags.to_node()], format)
        }
        Sealed::Sops => {
            let ids = require_identities(&IdentityArgs {
                identities: args.identities.identities.clone(),
            })?;
            sopsdoc::set(&bytes, &args.key, None, &ids)
                .with_context(|| args.file.display().to_string())?
        }
    };
    write_atomic(&args.file, out.as_bytes(), Sensitivity::Public)?;
    Ok(Exit::Ok)
}

/// The error for a key that is not in the file.
pub fn no_such_key(file: &Path, key: &str) -> anyhow::Error {
    user(format!("{} has no key {key}", file.display()))
        .exit(Exit::Error)
        .into()
}
