//! `kage unseal`: AgeSecrets (both forms) to Secret manifests, SOPS files to plaintext.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kage_core::keys::Identity;
use zeroize::Zeroizing;

use crate::agesecret::{AgeSecret, secret_to_node};
use crate::args::UnsealArgs;
use crate::cmd::Global;
use crate::exit::{Exit, in_doc, user};
use crate::io::{Destination, Sensitivity, write_atomic, write_stdout};
use crate::keysrc::{require_identities, ring};
use crate::manifest::{self, Kind};
use crate::sopsdoc;
use crate::tree;

/// Runs `kage unseal`.
pub fn run(args: UnsealArgs, _: &Global) -> Result<Exit> {
    let files = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files.clone()
    };
    let dest = Destination::resolve(args.output.as_deref(), false, &files)?;
    // plaintext never replaces the encrypted file it came from (nor another input)
    dest.check(&files, &|input| {
        user(format!(
            "refusing to write plaintext over the encrypted file {}",
            input.display()
        ))
        .hint("write the plaintext elsewhere with -o, or to stdout")
    })?;
    let ids = require_identities(&args.identities)?;
    let bar = crate::progress::bar(files.len());
    let results = crate::io::map_ordered(&files, |f| {
        let r = unseal_file(f, &dest, &ids, args.string_data);
        bar.inc(1);
        r
    });
    bar.finish_and_clear();
    let outputs = results.into_iter().collect::<Result<Vec<_>>>()?;
    let mut stdout = Zeroizing::new(String::new());
    for (target, text) in &outputs {
        match target {
            Some(path) => write_atomic(path, text.as_bytes(), Sensitivity::Plaintext)?,
            None => {
                if !stdout.is_empty() && !text.trim_start().starts_with('{') {
                    stdout.push_str("---\n");
                }
                stdout.push_str(text);
            }
        }
    }
    if !stdout.is_empty() {
        write_stdout(stdout.as_bytes())?;
    }
    Ok(Exit::Ok)
}

/// Reads and decrypts one input; the output file it goes to (`None`: stdout).
fn unseal_file(
    f: &Path,
    dest: &Destination,
    ids: &[Identity],
    string_data: bool,
) -> Result<(Option<PathBuf>, Zeroizing<String>)> {
    let input = crate::io::read_input(f)?;
    let target = dest.target(input.path.as_deref())?;
    let text = unseal_bytes(&input.bytes, ids, string_data).with_context(|| input.name())?;
    Ok((target, text))
}

/// Decrypts one input.
pub fn unseal_bytes(
    bytes: &[u8],
    ids: &[Identity],
    string_data: bool,
) -> Result<Zeroizing<String>> {
    if sopsdoc::is_sops(bytes) {
        return sopsdoc::unseal(bytes, ids, string_data);
    }
    let (format, values) = crate::raw::parse_docs(bytes)?;
    let values = crate::raw::flatten(values);
    if values.is_empty() {
        return Err(user("no document to unseal").into());
    }
    let ring = ring(ids);
    let mut nodes = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let node = match manifest::kind_of(v) {
            Kind::AgeSecret => AgeSecret::from_raw(v)
                .and_then(|ags| ags.open(&ring))
                .map(|secret| secret_to_node(&secret, string_data)),
            Kind::Secret => Err(user("a plaintext Secret, not encrypted")
                .hint("nothing to unseal; `kage seal` encrypts it")
                .into()),
            _ => Err(user("neither an AgeSecret nor a SOPS file").into()),
        };
        nodes.push(in_doc(node, i, values.len())?);
    }
    let text = Zeroizing::new(tree::emit(&nodes, format));
    nodes.iter_mut().for_each(tree::Node::wipe);
    Ok(text)
}
