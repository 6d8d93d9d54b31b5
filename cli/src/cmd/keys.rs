//! `kage keys list` (the cluster subcommands live beside it later).

use anyhow::Result;
use kage_core::keys::Recipient;

use crate::args::KeysListArgs;
use crate::cmd::Global;
use crate::config::Config;
use crate::exit::{Exit, user};

/// Runs `kage keys list`: every recipient of every environment with its kid and role.
pub fn run_list(args: KeysListArgs, global: &Global) -> Result<Exit> {
    let cfg = Config::require(global.config.as_deref())?;
    if let Some(name) = &args.env {
        cfg.env(name)?;
    }
    let mut out = String::from("ENV\tKID\tROLE\tRECIPIENT\n");
    for e in &cfg.environments {
        if args.env.as_ref().is_some_and(|n| n != &e.name) {
            continue;
        }
        let roles = e
            .recipients
            .iter()
            .enumerate()
            .map(|(i, r)| (r, if i == 0 { "current" } else { "older" }))
            .chain(e.extra_recipients.iter().map(|r| (r, "extra")));
        for (r, role) in roles {
            let rec: Recipient = r
                .parse()
                .map_err(|err| user(format!("environment {}: {r}: {err}", e.name)))?;
            out.push_str(&format!("{}\t{}\t{}\t{}\n", e.name, rec.kid(), role, rec));
        }
    }
    crate::io::write_stdout(out.as_bytes())?;
    Ok(Exit::Ok)
}
