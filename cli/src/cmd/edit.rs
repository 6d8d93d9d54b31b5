//! `kage edit`: decrypt into `$EDITOR` (a 0600 temp file, removed afterwards), encrypt again.
//! Unchanged values keep their ciphertext; no change means no write; a document that no longer
//! parses re-opens the editor on a terminal, and aborts without touching the file otherwise.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use zeroize::Zeroizing;

use crate::agesecret::{AgeSecret, secret_to_node};
use crate::args::EditArgs;
use crate::cmd::Global;
use crate::cmd::set::{Sealed, load};
use crate::exit::{Exit, classify, user};
use crate::io::{Sensitivity, write_atomic};
use crate::keysrc::{Resolver, require_identities, ring};
use crate::manifest;
use crate::sopsdoc;
use crate::tree::{self, Format};

/// Runs `kage edit`.
pub fn run(args: EditArgs, global: &Global) -> Result<Exit> {
    let ids = require_identities(&args.identities)?;
    let bytes = crate::io::read_file(&args.file)?;
    let result = match load(&args.file, &bytes)? {
        Sealed::AgeSecret(ags, format) => {
            let ring = ring(&ids);
            let old = ags
                .open(&ring)
                .with_context(|| args.file.display().to_string())?;
            let mut node = secret_to_node(&old, true);
            let plain = Zeroizing::new(tree::emit(std::slice::from_ref(&node), format));
            node.wipe();
            let mut resolver = None;
            edit_loop(&plain, format, |text| {
                let (_, values) = crate::raw::parse_docs(text.as_bytes())?;
                let mut secrets = manifest::secrets_of(values)?;
                if secrets.len() != 1 {
                    return Err(user("the edited file must hold exactly one Secret").into());
                }
                let new = secrets.remove(0);
                manifest::validate(&new)?;
                if resolver.is_none() {
                    resolver = Some(Resolver::new(&args.recipients, global.config.as_deref())?);
                }
                let target = resolver
                    .as_ref()
                    .expect("set above")
                    .target(Some(&args.file))
                    .with_context(|| args.file.display().to_string())?;
                let out = apply(&ags, &old, &new, &target.recipients)?;
                Ok(tree::emit(&[out.to_node()], format))
            })?
        }
        Sealed::Sops => {
            let (plain, format) = sopsdoc::edit_plain(&bytes, &ids)
                .with_context(|| args.file.display().to_string())?;
            edit_loop(&plain, format, |text| {
                sopsdoc::edit_apply(&bytes, text, &ids)
            })?
        }
    };
    match result {
        Some(out) if out.as_bytes() != bytes.as_slice() => {
            write_atomic(&args.file, out.as_bytes(), Sensitivity::Public)?;
        }
        _ => eprintln!("{}: no change", args.file.display()),
    }
    Ok(Exit::Ok)
}

/// The edited Secret sealed into the AgeSecret: unchanged values keep their ciphertext (unless
/// the namespace or name changed, which changes every binding).
fn apply(
    ags: &AgeSecret,
    old: &manifest::Secret,
    new: &manifest::Secret,
    recipients: &[kage_core::keys::Recipient],
) -> Result<AgeSecret> {
    let rebind = old.name != new.name || old.namespace != new.namespace;
    let mut out = ags.clone();
    out.name.clone_from(&new.name);
    out.namespace.clone_from(&new.namespace);
    out.secret_type.clone_from(&new.secret_type);
    out.immutable = new.immutable;
    out.template_labels.clone_from(&new.labels);
    out.template_annotations.clone_from(&new.annotations);
    out.encrypted.clear();
    out.template_data.clear();
    for (k, v) in &new.data {
        let unchanged = old
            .data
            .get(k)
            .is_some_and(|o| o.as_slice() == v.as_slice());
        if unchanged && let Some(clear) = ags.template_data.get(k) {
            out.template_data.insert(k.clone(), clear.clone());
        } else if unchanged
            && !rebind
            && let Some(c) = ags.encrypted.get(k)
        {
            out.encrypted.insert(k.clone(), c.clone());
        } else {
            out.seal_value(k, v, recipients)?;
        }
    }
    Ok(out)
}

/// Opens the editor on `plain` until `apply` accepts the result. `Ok(None)`: no change.
fn edit_loop(
    plain: &str,
    format: Format,
    mut apply: impl FnMut(&str) -> Result<String>,
) -> Result<Option<String>> {
    let suffix = match format {
        Format::Yaml => ".yaml",
        Format::Json => ".json",
    };
    // A private (0700) directory holding the 0600 file: the editor's own files beside it (a
    // swap file with plaintext) go with it. Removed when dropped, and by a signal that ends kage.
    let dir = tempfile::Builder::new()
        .prefix("kage-edit-")
        .tempdir()
        .context("creating the temporary directory")?;
    let _cleanup = crate::signals::Cleanup::register(dir.path());
    let path = dir.path().join(format!("secret{suffix}"));
    let mut tmp = private_file(&path).context("creating the temporary file")?;
    tmp.write_all(plain.as_bytes())
        .and_then(|_| tmp.flush())
        .context("writing the temporary file")?;
    drop(tmp);
    loop {
        let editing = crate::signals::EditorRunning::start();
        let status = run_editor(&path, &editing);
        if editing.interrupted() {
            return Err(user("interrupted; nothing was written")
                .exit(Exit::Interrupted)
                .into());
        }
        drop(editing);
        status?;
        let edited = Zeroizing::new(
            String::from_utf8(std::fs::read(&path).context("reading the edited file")?)
                .map_err(|_| user("the edited file is not UTF-8 text"))?,
        );
        if edited.as_str() == plain {
            return Ok(None);
        }
        match apply(&edited) {
            Ok(out) => return Ok(Some(out)),
            Err(err) => {
                if !ask_reopen(&err)? {
                    return Err(err.context("the edited file was not applied; nothing was written"));
                }
            }
        }
    }
}

/// On a terminal: show the problem and ask whether to edit again.
fn ask_reopen(err: &anyhow::Error) -> Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() || !std::io::stderr().is_terminal() {
        return Ok(false);
    }
    let r = classify(err);
    eprintln!("error: {}", r.message.unwrap_or_default());
    eprint!("Re-open the editor? [Y/n] ");
    let mut line = String::new();
    stdin.lock().read_line(&mut line).context("reading stdin")?;
    Ok(!matches!(line.trim(), "n" | "N" | "no"))
}

/// A new file only its owner can read.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

/// Runs `$VISUAL`, `$EDITOR` or `vi` on `path` (through `sh`, so the variable may hold options).
fn run_editor(path: &Path, editing: &crate::signals::EditorRunning) -> Result<()> {
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "vi".to_string());
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(path)
        .spawn()
        .with_context(|| format!("starting the editor {editor:?}"))?;
    editing.editor(child.id());
    let status = child.wait();
    editing.editor(0);
    // an editor stopped by kage's SIGTERM/SIGHUP/SIGQUIT: the signal's exit, not an error
    crate::signals::settle();
    let status = status.with_context(|| format!("waiting for the editor {editor:?}"))?;
    if !status.success() {
        return Err(user(format!(
            "the editor {editor:?} failed ({status}); nothing was written"
        ))
        .exit(Exit::Error)
        .into());
    }
    Ok(())
}
