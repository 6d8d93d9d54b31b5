//! One module per subcommand, each with `run(args, &Global) -> Result<Exit>`. Output goes through
//! `crate::io` (stdout, atomic 0600/0644 files) rather than an `Io` handle: no command needs more,
//! and the integration tests drive the real binary.

use std::path::PathBuf;

use anyhow::Result;

use crate::args::{Cli, Command, EnvCommand, KeysCommand};
use crate::exit::Exit;

pub mod edit;
pub mod env;
pub mod keygen;
pub mod keys;
pub mod reencrypt;
pub mod seal;
pub mod set;
pub mod sops_config;
pub mod unseal;
pub mod validate;

/// Options every subcommand shares.
#[derive(Debug, Clone, Default)]
pub struct Global {
    /// `--config` / `KAGE_CONFIG`.
    pub config: Option<PathBuf>,
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<Exit> {
    let config = cli.config.or_else(|| {
        std::env::var_os("KAGE_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let global = Global { config };
    match cli.command {
        Command::Keygen(a) => keygen::run(a, &global),
        Command::Seal(a) => seal::run(a, &global),
        Command::Set(a) => set::run_set(a, &global),
        Command::Unset(a) => set::run_unset(a, &global),
        Command::Unseal(a) => unseal::run(a, &global),
        Command::Edit(a) => edit::run(a, &global),
        Command::Reencrypt(a) => reencrypt::run(a, &global),
        Command::Validate(a) => validate::run(a, &global),
        Command::Env(EnvCommand::List) => env::run_list(&global),
        Command::Keys(KeysCommand::List(a)) => keys::run_list(a, &global),
        Command::Keys(KeysCommand::Fetch(a)) => keys::run_fetch(a, &global),
        Command::Keys(KeysCommand::Rotate(a)) => keys::run_rotate(a, &global),
        Command::Keys(KeysCommand::Retire(a)) => keys::run_retire(a, &global),
        Command::Keys(KeysCommand::Usage(a)) => keys::run_usage(a, &global),
        Command::Keys(KeysCommand::Backup(a)) => keys::run_backup(a, &global),
        Command::Keys(KeysCommand::Restore(a)) => keys::run_restore(a, &global),
        Command::SopsConfig(a) => sops_config::run(a, &global),
    }
}
