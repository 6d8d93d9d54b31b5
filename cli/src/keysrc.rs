//! Where keys come from: identities (`-i`, `KAGE_IDENTITY`, `SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY`)
//! and recipients (`-r`, `-R`, `--env`, or the environment matching a file's path).

use std::path::Path;

use anyhow::{Context, Result};
use kage_core::keys::{Identity, KeyRing, Recipient, parse_identity_file, parse_recipients};
use kage_core::sealed::Scope;

use crate::args::{IdentityArgs, RecipientArgs};
use crate::config::{Config, Environment};
use crate::exit::{Exit, user};

/// Loads every identity given: `-i` files first, then the environment variables.
/// `Ok(empty)` when none is given; [`require_identities`] makes that an error.
pub fn load_identities(args: &IdentityArgs) -> Result<Vec<Identity>> {
    let mut out = Vec::new();
    for path in &args.identities {
        out.extend(identity_file(path)?);
    }
    if let Some(v) = env_var("KAGE_IDENTITY") {
        if v.trim_start().starts_with("AGE-SECRET-KEY-") {
            out.extend(parse_identity_file(&v).context("reading KAGE_IDENTITY")?);
        } else {
            out.extend(identity_file(Path::new(&v)).context("KAGE_IDENTITY")?);
        }
    }
    if let Some(v) = env_var("SOPS_AGE_KEY_FILE") {
        out.extend(identity_file(Path::new(&v)).context("SOPS_AGE_KEY_FILE")?);
    }
    if let Some(v) = env_var("SOPS_AGE_KEY") {
        out.extend(parse_identity_file(&v).context("reading SOPS_AGE_KEY")?);
    }
    Ok(out)
}

/// Like [`load_identities`], but none at all is an error.
pub fn require_identities(args: &IdentityArgs) -> Result<Vec<Identity>> {
    let ids = load_identities(args)?;
    if ids.is_empty() {
        return Err(user("no identity given")
            .hint("pass -i FILE, or set KAGE_IDENTITY, SOPS_AGE_KEY_FILE or SOPS_AGE_KEY")
            .exit(Exit::NoMatchingKey)
            .into());
    }
    Ok(ids)
}

/// A key ring of identities.
pub fn ring(ids: &[Identity]) -> KeyRing {
    KeyRing::from_identities(ids.iter().cloned())
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn identity_file(path: &Path) -> Result<Vec<Identity>> {
    let bytes = zeroize::Zeroizing::new(crate::io::read_file(path)?);
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| user(format!("{} is not an age identity file", path.display())))?;
    let ids = parse_identity_file(text).with_context(|| format!("reading {}", path.display()))?;
    if ids.is_empty() {
        return Err(user(format!(
            "{} holds no AGE-SECRET-KEY-1… line",
            path.display()
        ))
        .hint("create one with `kage keygen -o FILE` or `age-keygen -o FILE`")
        .into());
    }
    Ok(ids)
}

/// The recipients (and environment, when one applies) a file is sealed to.
#[derive(Debug, Clone)]
pub struct Target {
    /// The environment, if one was chosen or matched.
    pub env: Option<Environment>,
    /// Recipients to encrypt to (environment recipients plus extra recipients, or `-r`/`-R`).
    pub recipients: Vec<Recipient>,
}

impl Target {
    /// The environment's default scope.
    pub fn default_scope(&self) -> Scope {
        self.env
            .as_ref()
            .and_then(|e| e.scope.as_deref())
            .and_then(|s| s.parse().ok())
            .unwrap_or(Scope::Strict)
    }
}

/// Resolves where files are sealed to: `-r`/`-R` replace the environment's recipients (the
/// environment, from `--env` or the path, still supplies the default scope when found).
pub struct Resolver {
    explicit: Vec<Recipient>,
    env_name: Option<String>,
    config: Option<Config>,
}

impl Resolver {
    /// Reads `-r`/`-R` and, when needed, `.kage.yaml` (once for all files).
    pub fn new(args: &RecipientArgs, config_path: Option<&Path>) -> Result<Resolver> {
        let mut explicit = Vec::new();
        for r in &args.recipients {
            explicit.push(
                r.parse::<Recipient>()
                    .map_err(|e| user(format!("-r {r}: {e}")).exit(Exit::Usage))?,
            );
        }
        for path in &args.recipients_files {
            let text = String::from_utf8(crate::io::read_file(path)?)
                .map_err(|_| user(format!("{} is not a recipients file", path.display())))?;
            let rs =
                parse_recipients(&text).with_context(|| format!("reading {}", path.display()))?;
            if rs.is_empty() {
                return Err(user(format!("{} lists no recipient", path.display())).into());
            }
            explicit.extend(rs);
        }
        let config = if explicit.is_empty() || args.env.is_some() {
            Some(Config::require(config_path)?)
        } else {
            Config::find(config_path).ok().flatten()
        };
        if let (Some(cfg), Some(name)) = (&config, &args.env) {
            cfg.env(name)?;
        }
        Ok(Resolver {
            explicit,
            env_name: args.env.clone(),
            config,
        })
    }

    /// The path whose environment applies: the input's, or the output's when only the output lies
    /// under an environment's `paths` (`kage seal secret.yaml -o clusters/prod/db.yaml`).
    pub fn env_path<'a>(
        &self,
        input: Option<&'a Path>,
        output: Option<&'a Path>,
    ) -> Option<&'a Path> {
        let in_env = |p: &Path| {
            self.config
                .as_ref()
                .is_some_and(|c| c.env_for_path(p).is_ok())
        };
        match (input, output) {
            (Some(i), Some(o)) if !in_env(i) && in_env(o) => Some(o),
            (Some(i), _) => Some(i),
            (None, o) => o,
        }
    }

    /// Where `file` (or stdin, `None`) is sealed to.
    pub fn target(&self, file: Option<&Path>) -> Result<Target> {
        let have_explicit = !self.explicit.is_empty();
        let env = match (&self.config, &self.env_name, file) {
            (Some(cfg), Some(name), _) => Some(cfg.env(name)?.clone()),
            (Some(cfg), None, Some(f)) if have_explicit => cfg.env_for_path(f).ok().cloned(),
            (Some(cfg), None, Some(f)) => Some(cfg.env_for_path(f)?.clone()),
            (_, None, None) if !have_explicit => {
                return Err(user("no path to pick an environment from")
                    .hint("pass --env NAME or -r/--recipient")
                    .exit(Exit::Usage)
                    .into());
            }
            _ => None,
        };
        let recipients = if have_explicit {
            self.explicit.clone()
        } else {
            let env = env.as_ref().expect("required when no explicit recipients");
            env_recipients(env)?
        };
        Ok(Target { env, recipients })
    }
}

/// An environment's recipients then extra recipients, without duplicates.
pub fn env_recipients(env: &Environment) -> Result<Vec<Recipient>> {
    let mut rs: Vec<Recipient> = Vec::new();
    for r in env.recipients.iter().chain(&env.extra_recipients) {
        let r = r
            .parse::<Recipient>()
            .map_err(|e| user(format!("{r}: {e}")))?;
        if !rs.contains(&r) {
            rs.push(r);
        }
    }
    if rs.is_empty() {
        return Err(user(format!("environment {} has no recipients", env.name))
            .hint("add the cluster's public key to `recipients` in .kage.yaml")
            .into());
    }
    Ok(rs)
}
