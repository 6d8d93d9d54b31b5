//! `kage env list`.

use anyhow::Result;

use crate::cmd::Global;
use crate::config::Config;
use crate::exit::Exit;

/// Runs `kage env list`: one line per environment.
pub fn run_list(global: &Global) -> Result<Exit> {
    let cfg = Config::require(global.config.as_deref())?;
    let mut out = String::from("NAME\tSCOPE\tRECIPIENTS\tPATHS\tCLUSTER\n");
    for e in &cfg.environments {
        let cluster = match &e.cluster {
            Some(c) => format!(
                "{}/{}",
                c.context.as_deref().unwrap_or("-"),
                c.namespace.as_deref().unwrap_or("kage-system")
            ),
            None => "-".to_string(),
        };
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            e.name,
            e.scope.as_deref().unwrap_or("strict"),
            e.recipients.len() + e.extra_recipients.len(),
            e.paths.join(","),
            cluster
        ));
    }
    crate::io::write_stdout(out.as_bytes())?;
    Ok(Exit::Ok)
}
