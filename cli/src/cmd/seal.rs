//! `kage seal`: Secret manifests to AgeSecrets (sealed form), or any document to SOPS (`--sops`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kage_core::sealed::Scope;

use crate::agesecret::AgeSecret;
use crate::args::{ScopeArg, SealArgs, SopsArgs};
use crate::cmd::Global;
use crate::exit::{Exit, in_doc, user};
use crate::io::{Destination, Sensitivity, display_name, is_dash, write_atomic, write_stdout};
use crate::keysrc::{Resolver, Target};
use crate::manifest::{self, Secret};
use crate::sopsdoc;
use crate::tree::{self, Format, Node};

/// Where the Secrets come from.
enum Source {
    /// Manifest files (or `-` for stdin).
    Files(Vec<PathBuf>),
    /// `--from-literal` / `--from-file`: one Secret built on the command line.
    Literals(Box<Secret>),
}

/// What kind of output.
enum Mode {
    /// AgeSecret, sealed form.
    Sealed,
    /// SOPS.
    Sops(SopsArgs),
    /// Add values to an existing sealed AgeSecret.
    Merge(PathBuf),
}

/// `kage seal` resolved and checked.
struct Config {
    source: Source,
    mode: Mode,
    dest: Destination,
    scope: Option<Scope>,
    name: Option<String>,
    namespace: Option<String>,
    secret_type: Option<String>,
}

impl Config {
    fn from_args(args: &SealArgs) -> Result<Config> {
        let literals = !args.from_literal.is_empty() || !args.from_file.is_empty();
        if literals && !args.files.is_empty() {
            return Err(user("--from-literal/--from-file build a Secret; they cannot be combined with manifest files")
                .hint("seal the files and the literals in two runs, or use --merge-into")
                .exit(Exit::Usage)
                .into());
        }
        let source = if literals {
            let mut s = manifest::from_literals(&args.from_literal, &args.from_file)?;
            s.secret_type.clone_from(&args.secret_type);
            Source::Literals(Box::new(s))
        } else if args.files.is_empty() {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                return Err(user("no input: stdin is a terminal")
                    .hint("pass a manifest FILE, pipe one in, or use --from-literal/--from-file")
                    .exit(Exit::Usage)
                    .into());
            }
            Source::Files(vec![PathBuf::from("-")])
        } else {
            Source::Files(args.files.clone())
        };
        if let Source::Files(files) = &source
            && files.iter().filter(|f| is_dash(f)).count() > 1
        {
            return Err(user("stdin (-) can be read only once")
                .exit(Exit::Usage)
                .into());
        }
        let inputs = match &source {
            Source::Files(f) => f.clone(),
            Source::Literals(_) => vec![],
        };
        let mode = if let Some(existing) = &args.merge_into {
            if inputs.len() > 1 {
                return Err(user("--merge-into takes one input")
                    .exit(Exit::Usage)
                    .into());
            }
            if args.output.in_place {
                return Err(
                    user("--merge-into already writes EXISTING in place; drop --in-place")
                        .exit(Exit::Usage)
                        .into(),
                );
            }
            Mode::Merge(existing.clone())
        } else if args.sops.sops {
            Mode::Sops(args.sops.clone())
        } else {
            Mode::Sealed
        };
        let dest = match (&mode, args.output.output.as_deref()) {
            (Mode::Merge(existing), None) => Destination::File(existing.clone()),
            _ => {
                Destination::resolve(args.output.output.as_deref(), args.output.in_place, &inputs)?
            }
        };
        dest.check(&inputs, &|input| {
            user(format!(
                "refusing to write over the input {}",
                input.display()
            ))
            .hint("--in-place replaces the inputs deliberately; otherwise choose another -o")
        })?;
        Ok(Config {
            source,
            mode,
            dest,
            scope: args.scope.map(scope_of),
            name: args.name.clone(),
            namespace: args.namespace.clone(),
            secret_type: args.secret_type.clone(),
        })
    }
}

/// The core scope for a `--scope` value.
pub fn scope_of(s: ScopeArg) -> Scope {
    match s {
        ScopeArg::Strict => Scope::Strict,
        ScopeArg::Namespace => Scope::Namespace,
        ScopeArg::Cluster => Scope::Cluster,
    }
}

/// One finished output.
struct Output {
    target: Option<PathBuf>,
    text: String,
}

/// Runs `kage seal`.
pub fn run(mut args: SealArgs, global: &Global) -> Result<Exit> {
    if args.cluster {
        // The cluster's active keys replace .kage.yaml's recipients (like -r); with --env, that
        // environment's extraRecipients are added.
        let env = crate::config::Config::named_env(
            global.config.as_deref(),
            args.recipients.env.as_deref(),
        )?;
        let cluster = crate::cluster::connect_env(&args.cluster_args, env.as_ref())?;
        let keys = crate::cluster::ClusterAccess::public_keys(&cluster)?;
        let mut rs: Vec<String> = crate::cluster::active_recipients(&keys)?
            .iter()
            .map(|r| r.as_str().to_string())
            .collect();
        if let Some(e) = &env {
            rs.extend(e.extra_recipients.iter().cloned());
        }
        args.recipients.recipients = rs;
    }
    let cfg = Config::from_args(&args)?;
    let resolver = Resolver::new(&args.recipients, global.config.as_deref())?;
    let mut outputs = Vec::new();
    match &cfg.mode {
        Mode::Merge(existing) => {
            outputs.push(merge(&cfg, existing, &resolver)?);
        }
        _ => match &cfg.source {
            Source::Literals(secret) => {
                // no input file: the output path (if any) picks the environment
                let out = cfg.dest.target(None)?;
                let target = resolver.target(out.as_deref())?;
                let text = match &cfg.mode {
                    Mode::Sops(opts) => sopsdoc::seal_secret(
                        &cfg_secret(&cfg, clone_secret(secret))?,
                        opts,
                        &target,
                        SopsSealOptions::from_cfg(&cfg),
                    )?,
                    _ => tree::emit(
                        &[seal_secret_node(&cfg, clone_secret(secret), &target)?],
                        Format::Yaml,
                    ),
                };
                outputs.push(Output { target: out, text });
            }
            Source::Files(files) => {
                let bar = crate::progress::bar(files.len());
                let results = crate::io::map_ordered(files, |f| {
                    let r = seal_file(&cfg, f, &resolver);
                    bar.inc(1);
                    r
                });
                bar.finish_and_clear();
                for r in results {
                    outputs.push(r?);
                }
            }
        },
    }
    write_outputs(outputs)
}

/// Reads and seals one input file.
fn seal_file(cfg: &Config, f: &Path, resolver: &Resolver) -> Result<Output> {
    let input = crate::io::read_input(f)?;
    let path = input.path;
    let out = cfg.dest.target(path.as_deref())?;
    let env_path = resolver.env_path(path.as_deref(), out.as_deref());
    let text = seal_input(cfg, input.bytes, env_path, resolver)
        .with_context(|| display_name(path.as_deref()))?;
    Ok(Output { target: out, text })
}

/// Writes every output once all inputs succeeded: stdout outputs joined as one stream.
fn write_outputs(mut outputs: Vec<Output>) -> Result<Exit> {
    if let [only] = outputs.as_mut_slice()
        && only.target.is_none()
    {
        write_stdout(std::mem::take(&mut only.text).as_bytes())?;
        return Ok(Exit::Ok);
    }
    let mut stdout = String::new();
    for out in &outputs {
        if out.target.is_none() {
            if !stdout.is_empty() && !out.text.trim_start().starts_with('{') {
                stdout.push_str("---\n");
            }
            stdout.push_str(&out.text);
        }
    }
    for out in outputs {
        if let Some(path) = out.target {
            write_atomic(&path, out.text.as_bytes(), Sensitivity::Public)?;
        }
    }
    if !stdout.is_empty() {
        write_stdout(stdout.as_bytes())?;
    }
    Ok(Exit::Ok)
}

/// Seals one input file's documents.
fn seal_input(
    cfg: &Config,
    bytes: Vec<u8>,
    path: Option<&Path>,
    resolver: &Resolver,
) -> Result<String> {
    let target = resolver.target(path)?;
    if let Mode::Sops(opts) = &cfg.mode {
        return sopsdoc::seal_bytes(&bytes, opts, &target, SopsSealOptions::from_cfg(cfg));
    }
    let (format, values) = crate::raw::parse_docs(&bytes)?;
    drop(bytes);
    if values.is_empty() {
        return Err(user("no document to seal").into());
    }
    let secrets = manifest::secrets_of(values)?;
    if secrets.is_empty() {
        return Err(user("no Secret to seal (an empty List)").into());
    }
    let n = secrets.len();
    let mut nodes = Vec::with_capacity(n);
    for (i, secret) in secrets.into_iter().enumerate() {
        nodes.push(in_doc(seal_secret_node(cfg, secret, &target), i, n)?);
    }
    Ok(tree::emit(&nodes, format))
}

fn clone_secret(s: &Secret) -> Secret {
    Secret {
        name: s.name.clone(),
        namespace: s.namespace.clone(),
        labels: s.labels.clone(),
        annotations: s.annotations.clone(),
        secret_type: s.secret_type.clone(),
        immutable: s.immutable,
        data: s.data.clone(),
    }
}

/// Overrides applied and checks passed: the Secret as it will be sealed.
fn cfg_secret(cfg: &Config, mut s: Secret) -> Result<Secret> {
    manifest::prepare(
        &mut s,
        cfg.name.as_deref(),
        cfg.namespace.as_deref(),
        cfg.secret_type.as_deref(),
    )?;
    Ok(s)
}

fn seal_secret_node(cfg: &Config, secret: Secret, target: &Target) -> Result<Node> {
    let s = cfg_secret(cfg, secret)?;
    let scope = cfg.scope.unwrap_or_else(|| target.default_scope());
    let sealed = AgeSecret::seal(&s, scope, &target.recipients)?;
    drop(s);
    Ok(sealed.into_node())
}

/// Options for SOPS output that come from the Secret flags.
pub struct SopsSealOptions<'a> {
    /// `--scope`.
    pub scope: Option<Scope>,
    /// `--name`.
    pub name: Option<&'a str>,
    /// `--namespace`.
    pub namespace: Option<&'a str>,
    /// `--type`.
    pub secret_type: Option<&'a str>,
}

impl<'a> SopsSealOptions<'a> {
    fn from_cfg(cfg: &'a Config) -> Self {
        SopsSealOptions {
            scope: cfg.scope,
            name: cfg.name.as_deref(),
            namespace: cfg.namespace.as_deref(),
            secret_type: cfg.secret_type.as_deref(),
        }
    }
}

/// `--merge-into EXISTING`: add or replace values with the public keys only.
fn merge(cfg: &Config, existing: &Path, resolver: &Resolver) -> Result<Output> {
    let bytes = crate::io::read_file(existing)?;
    if sopsdoc::is_sops(&bytes) {
        return Err(user(format!(
            "{} is a SOPS file; adding a value needs its data key",
            existing.display()
        ))
        .hint("use `kage set FILE KEY VALUE -i IDENTITY`")
        .into());
    }
    let (format, values) =
        crate::raw::parse_docs(&bytes).with_context(|| existing.display().to_string())?;
    let values = crate::raw::flatten(values);
    let [doc] = values.as_slice() else {
        return Err(user(format!(
            "{} holds {} documents; --merge-into needs exactly one AgeSecret",
            existing.display(),
            values.len()
        ))
        .into());
    };
    match manifest::kind_of(doc) {
        manifest::Kind::AgeSecret => {}
        manifest::Kind::Sops => {
            return Err(user(format!(
                "{} is a SOPS file; adding a value needs its data key",
                existing.display()
            ))
            .hint("use `kage set FILE KEY VALUE -i IDENTITY`")
            .into());
        }
        _ => {
            return Err(user(format!("{} is not an AgeSecret", existing.display())).into());
        }
    }
    let mut ags = AgeSecret::from_raw(doc).with_context(|| existing.display().to_string())?;
    let incoming = match &cfg.source {
        Source::Literals(s) => {
            let mut s = Secret {
                data: s.data.clone(),
                secret_type: s.secret_type.clone(),
                ..Secret::default()
            };
            manifest::apply_overrides(&mut s, cfg.name.as_deref(), cfg.namespace.as_deref())?;
            s
        }
        Source::Files(files) => {
            let input = crate::io::read_input(&files[0])?;
            let (_, values) = crate::raw::parse_docs(&input.bytes).with_context(|| input.name())?;
            let mut secrets = manifest::secrets_of(values).with_context(|| input.name())?;
            if secrets.len() != 1 {
                return Err(user(format!(
                    "{} holds {} Secrets; --merge-into takes one",
                    input.name(),
                    secrets.len()
                ))
                .into());
            }
            let mut s = secrets.remove(0);
            manifest::apply_overrides(&mut s, cfg.name.as_deref(), cfg.namespace.as_deref())?;
            s
        }
    };
    for (what, have, want) in [
        ("name", &ags.name, &incoming.name),
        ("namespace", &ags.namespace, &incoming.namespace),
    ] {
        if let Some(w) = want
            && have.as_deref() != Some(w.as_str())
        {
            return Err(user(format!(
                "the Secret's {what} {w} differs from the AgeSecret's ({})",
                have.as_deref().unwrap_or("none")
            ))
            .hint("values are bound to the AgeSecret's namespace and name; merge into the matching file")
            .into());
        }
    }
    if let Some(s) = cfg.scope
        && s != ags.scope
    {
        return Err(user(format!(
            "--scope {} differs from the AgeSecret's scope {}",
            s.as_str(),
            ags.scope.as_str()
        ))
        .exit(Exit::Usage)
        .into());
    }
    if let Some(t) = &incoming.secret_type
        && ags.secret_type.as_deref().unwrap_or("Opaque") != t
    {
        return Err(user(format!(
            "type {t} differs from the AgeSecret's template type {}",
            ags.secret_type.as_deref().unwrap_or("Opaque")
        ))
        .into());
    }
    let target = resolver
        .target(Some(existing))
        .with_context(|| existing.display().to_string())?;
    let check = Secret {
        name: ags.name.clone(),
        namespace: ags.namespace.clone(),
        data: incoming.data.clone(),
        ..Secret::default()
    };
    manifest::validate(&check)?;
    for (k, v) in &incoming.data {
        ags.seal_value(k, v, &target.recipients)?;
    }
    ags.template_labels.extend(incoming.labels.clone());
    ags.template_annotations
        .extend(incoming.annotations.clone());
    Ok(Output {
        target: cfg.dest.target(Some(existing))?,
        text: tree::emit(&[ags.to_node()], format),
    })
}
