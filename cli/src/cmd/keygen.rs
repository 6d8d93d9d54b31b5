//! `kage keygen`: an age identity in age-keygen's exact file format.

use std::fs::OpenOptions;
use std::io::Write;

use anyhow::{Context, Result};
use kage_core::keys::{Identity, format_identity_file};

use crate::args::KeygenArgs;
use crate::cmd::Global;
use crate::exit::{Exit, user};

/// Runs `kage keygen`.
pub fn run(args: KeygenArgs, _: &Global) -> Result<Exit> {
    let identity = Identity::generate();
    let text = format_identity_file(&identity, jiff::Timestamp::now());
    match args.output.as_deref() {
        Some(path) if !crate::io::is_dash(path) => {
            let ctx = || format!("writing {}", path.display());
            let mut opts = OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut file = opts.open(path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    anyhow::Error::new(
                        user(format!("{} already exists", path.display()))
                            .hint("kage keygen never overwrites a key; choose another file"),
                    )
                } else {
                    anyhow::Error::new(e).context(ctx())
                }
            })?;
            file.write_all(text.as_bytes()).with_context(ctx)?;
            file.sync_all().with_context(ctx)?;
        }
        _ => crate::io::write_stdout(text.as_bytes())?,
    }
    eprintln!("Public key: {}", identity.recipient());
    Ok(Exit::Ok)
}
