//! `kage reencrypt`: re-seal files in place to their environment's current recipients.
//! Values already sealed to exactly those recipients keep their ciphertext; a file with nothing
//! to change is not written.

use std::path::PathBuf;

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
    if args.identities.identities.is_empty()
        && crate::keysrc::load_identities(&args.identities)?.is_empty()
        && args.recipients.recipients.is_empty()
        && args.recipients.recipients_files.is_empty()
    {
        // No identity: the controller re-seals (it never returns plaintext).
        if !crate::cluster::have_kubeconfig() && args.cluster.controller_url.is_none() {
            return Err(crate::exit::user("no identity given, and no kubeconfig to ask the controller")
                .hint("pass -i FILE (or set KAGE_IDENTITY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY) to re-encrypt offline, or set KUBECONFIG to re-encrypt through kage-controller")
                .exit(Exit::NoMatchingKey)
                .into());
        }
        // Files go to the cluster of their environment (`cluster:` in .kage.yaml; the flags
        // override it), one connection per environment, in the order given.
        let config = crate::config::Config::find(global.config.as_deref())?;
        let groups = crate::cluster::files_by_env(
            config.as_ref(),
            args.recipients.env.as_deref(),
            &args.files,
        )?;
        // Nothing is written until every file was answered: a refusal leaves all files as they were.
        let mut rewrites = Vec::new();
        for (env, files) in &groups {
            let cluster = crate::cluster::connect_env(&args.cluster, *env)?;
            rewrites.extend(run_cluster(&cluster, files, *env)?);
        }
        for (file, text, note) in rewrites {
            write_atomic(&file, text.as_bytes(), Sensitivity::Public)?;
            eprintln!("{}: {note}", file.display());
        }
        return Ok(Exit::Ok);
    }
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

/// `kage reencrypt` through the controller's `/v1/reencrypt`: the `files` of environment `env`
/// are re-sealed to the cluster's current key plus the environment's extraRecipients; a sealed
/// file keeps the ciphertext of values already sealed to exactly those keys and its own layout.
/// Returns what to write (file, new text, what happened); files already current are left out.
pub fn run_cluster(
    cluster: &dyn crate::cluster::ClusterAccess,
    files: &[PathBuf],
    env: Option<&crate::config::Environment>,
) -> Result<Vec<(PathBuf, String, String)>> {
    let mut rewrites = Vec::new();
    let keys = cluster.public_keys()?;
    let current = crate::cluster::active_recipients(&keys)?.remove(0);
    let extra: &[String] = env.map_or(&[], |e| &e.extra_recipients);
    for file in files {
        let mut want: Vec<Kid> = std::iter::once(current.kid())
            .chain(extra.iter().filter_map(|r| {
                r.parse::<kage_core::keys::Recipient>()
                    .ok()
                    .map(|r| r.kid())
            }))
            .collect();
        want.sort();
        want.dedup();
        let bytes = crate::io::read_file(file)?;
        let ctx = || file.display().to_string();
        let (body, sealed_form) = match load(file, &bytes)? {
            Sealed::AgeSecret(ags, format) => {
                let mut stale = false;
                for v in ags.encrypted.values() {
                    let mut have = sealed::kids_of(v).with_context(ctx)?;
                    have.sort();
                    have.dedup();
                    stale |= have != want;
                }
                if !stale {
                    eprintln!("{}: already current", file.display());
                    continue;
                }
                let json = tree::emit(&[ags.to_node()], crate::tree::Format::Json);
                let value: serde_json::Value = serde_json::from_str(&json)?;
                (value, Some((ags, format)))
            }
            Sealed::Sops => {
                let mut docs = crate::cmd::validate::json_docs(&bytes).with_context(ctx)?;
                if docs.len() != 1 {
                    return Err(crate::exit::user(format!(
                        "{}: the controller re-encrypts files with one AgeSecret",
                        file.display()
                    ))
                    .into());
                }
                (docs.remove(0), None)
            }
        };
        let request = serde_json::json!({"ageSecret": body, "extraRecipients": extra});
        let answer = cluster.controller_post("/v1/reencrypt", serde_json::to_vec(&request)?)?;
        if answer.status != 200 {
            let v: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
            let (reason, code) = match v.get("reason").and_then(|r| r.as_str()) {
                Some("UnknownKey") => ("UnknownKey", Exit::NoMatchingKey),
                Some("DecryptFailed") => ("DecryptFailed", Exit::Integrity),
                Some("ScopeMismatch") => ("ScopeMismatch", Exit::BindingMismatch),
                Some(r) => (r, Exit::Error),
                None => ("refused", Exit::Error),
            };
            return Err(crate::exit::user(format!(
                "{}: the controller refused to re-encrypt ({}): {reason}: {}",
                file.display(),
                answer.status,
                crate::cluster::error_text(&answer.body)
            ))
            .exit(code)
            .into());
        }
        let (text, note) = match sealed_form {
            Some((mut ags, format)) => {
                let (_, docs) = crate::raw::parse_docs(&answer.body).with_context(ctx)?;
                let [doc] = docs.as_slice() else {
                    return Err(crate::exit::user(format!(
                        "{}: the controller answered no AgeSecret",
                        file.display()
                    ))
                    .into());
                };
                let new = crate::agesecret::AgeSecret::from_raw(doc).with_context(ctx)?;
                let mut n = 0;
                for (k, v) in ags.encrypted.iter_mut() {
                    let mut have = sealed::kids_of(v).with_context(ctx)?;
                    have.sort();
                    have.dedup();
                    if have != want
                        && let Some(nv) = new.encrypted.get(k)
                    {
                        *v = nv.clone();
                        n += 1;
                    }
                }
                (
                    tree::emit(&[ags.to_node()], format),
                    format!("re-encrypted by the controller ({n} value(s))"),
                )
            }
            None => {
                let v: serde_json::Value = serde_json::from_slice(&answer.body).map_err(|e| {
                    crate::exit::user(format!(
                        "{}: the controller's answer is not JSON: {e}",
                        file.display()
                    ))
                })?;
                let metadata = v.get("sops").ok_or_else(|| {
                    crate::exit::user(format!(
                        "{}: the controller's answer has no sops metadata",
                        file.display()
                    ))
                })?;
                let text = sopsdoc::replace_metadata(&bytes, metadata).with_context(ctx)?;
                (text, "re-encrypted by the controller".to_string())
            }
        };
        rewrites.push((file.clone(), text, note));
    }
    Ok(rewrites)
}
