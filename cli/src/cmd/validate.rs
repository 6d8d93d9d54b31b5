//! `kage validate`: offline checks of sealed files, with one report line per file.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use kage_core::keys::{Identity, KeyRing, Kid};
use kage_core::{k8s, sealed};
use zeroize::Zeroizing;

use crate::agesecret::{AgeSecret, binding_for};
use crate::args::ValidateArgs;
use crate::cmd::Global;
use crate::config::{Config, Environment};
use crate::exit::{Exit, classify};
use crate::keysrc::{env_recipients, load_identities, ring};
use crate::manifest::{self, Kind};
use crate::sopsdoc;

/// What one check found.
pub struct Findings {
    /// Problems that make the file invalid.
    pub errors: Vec<String>,
    /// Things to act on that do not break the file.
    pub warnings: Vec<String>,
    /// Exit code of the first error.
    pub exit: Option<Exit>,
}

impl Findings {
    pub fn fail(&mut self, msg: String, exit: Exit) {
        self.errors.push(msg);
        self.exit.get_or_insert(exit);
    }
    pub fn fail_err(&mut self, prefix: &str, err: &anyhow::Error) {
        let r = classify(err);
        let msg = r.message.unwrap_or_default();
        self.fail(
            if prefix.is_empty() {
                msg
            } else {
                format!("{prefix}: {msg}")
            },
            r.exit,
        );
    }
}

/// What the checks know about the environment of a file.
pub struct Context<'a> {
    /// The environment's name.
    pub env: Option<&'a Environment>,
    /// Every kid the environment knows (recipients and extra recipients).
    pub known: Vec<Kid>,
    /// The newest cluster key's kid.
    pub current: Option<Kid>,
    /// Identities, if any were given.
    pub ids: &'a [Identity],
}

/// Runs `kage validate`.
pub fn run(args: ValidateArgs, global: &Global) -> Result<Exit> {
    if args.cluster {
        // Each file asks the cluster of its environment (`cluster:` in .kage.yaml; the flags
        // override it).
        let config = Config::find(global.config.as_deref())?;
        let groups =
            crate::cluster::files_by_env(config.as_ref(), args.env.as_deref(), &args.files)?;
        let mut exit = Exit::Ok;
        for (env, files) in &groups {
            let cluster = crate::cluster::connect_env(&args.cluster_args, *env)?;
            let code = run_cluster(&cluster, files)?;
            if exit == Exit::Ok {
                exit = code;
            }
        }
        return Ok(exit);
    }
    let cfg = if args.env.is_some() {
        Some(Config::require(global.config.as_deref())?)
    } else {
        Config::find(global.config.as_deref())?
    };
    if let (Some(c), Some(n)) = (&cfg, &args.env) {
        c.env(n)?;
    }
    let ids = load_identities(&args.identities)?;
    let bar = crate::progress::bar(args.files.len());
    let reports = crate::io::map_ordered(&args.files, |file| {
        let r = check_file(file, cfg.as_ref(), args.env.as_deref(), &ids);
        bar.inc(1);
        r
    });
    bar.finish_and_clear();
    let mut report = String::new();
    let mut exit = Exit::Ok;
    for (text, code) in reports {
        report.push_str(&text);
        if exit == Exit::Ok
            && let Some(code) = code
        {
            exit = code;
        }
    }
    crate::io::write_stdout(report.as_bytes())?;
    Ok(exit)
}

/// The report lines of one file and the exit code of its first failure.
fn check_file(
    file: &Path,
    cfg: Option<&Config>,
    env_name: Option<&str>,
    ids: &[kage_core::keys::Identity],
) -> (String, Option<Exit>) {
    let mut f = Findings {
        errors: vec![],
        warnings: vec![],
        exit: None,
    };
    let env = match (cfg, env_name) {
        (Some(c), Some(n)) => c.env(n).ok(),
        (Some(c), None) => match c.env_for_path(file) {
            Ok(e) => Some(e),
            Err(e) => {
                f.warnings.push(format!(
                    "kids not checked: {}",
                    classify(&e).message.unwrap_or_default()
                ));
                None
            }
        },
        (None, _) => {
            f.warnings.push("kids not checked: no .kage.yaml".into());
            None
        }
    };
    let mut ctx = Context {
        env,
        known: vec![],
        current: None,
        ids,
    };
    if let Some(e) = env {
        match env_recipients(e) {
            Ok(rs) => {
                ctx.known = rs.iter().map(|r| r.kid()).collect();
                ctx.current = e
                    .recipients
                    .first()
                    .and_then(|r| r.parse::<kage_core::keys::Recipient>().ok())
                    .map(|r| r.kid());
            }
            Err(err) => f.fail_err("", &err),
        }
    }
    match crate::io::read_file(file) {
        Ok(bytes) => check_bytes(&bytes, &ctx, &mut f),
        Err(err) => f.fail_err("", &err),
    }
    let name = file.display();
    let mut report = String::new();
    let mut exit = None;
    if f.errors.is_empty() {
        report.push_str(&format!("ok    {name}\n"));
    } else {
        for e in &f.errors {
            report.push_str(&format!("FAIL  {name}: {e}\n"));
        }
        exit = Some(f.exit.unwrap_or(Exit::Error));
    }
    for w in &f.warnings {
        report.push_str(&format!("warn  {name}: {w}\n"));
    }
    (report, exit)
}

/// Checks one file's bytes.
pub fn check_bytes(bytes: &[u8], ctx: &Context<'_>, f: &mut Findings) {
    if sopsdoc::is_sops(bytes) {
        return sopsdoc::validate(bytes, ctx, f);
    }
    let values = match crate::raw::parse_docs(bytes) {
        Ok((_, v)) => crate::raw::flatten(v),
        Err(err) => return f.fail_err("", &err),
    };
    if values.is_empty() {
        return f.fail("no document".into(), Exit::Error);
    }
    let ring = ring(ctx.ids);
    for (i, v) in values.iter().enumerate() {
        let prefix = if values.len() > 1 {
            format!("document {}", i + 1)
        } else {
            String::new()
        };
        let p = |msg: String| pre(&prefix, msg);
        match manifest::kind_of(v) {
            Kind::AgeSecret => match AgeSecret::from_raw(v) {
                Ok(ags) => check_agesecret(&ags, ctx, &ring, f, &prefix),
                Err(err) => f.fail_err(&prefix, &err),
            },
            Kind::Secret => f.fail(
                p("a plaintext Secret: its values are in clear (seal it with `kage seal`)".into()),
                Exit::Error,
            ),
            _ => f.fail(
                p("neither an AgeSecret nor a SOPS file".into()),
                Exit::Error,
            ),
        }
    }
}

fn check_agesecret(
    ags: &AgeSecret,
    ctx: &Context<'_>,
    ring: &KeyRing,
    f: &mut Findings,
    prefix: &str,
) {
    let p = |msg: String| pre(prefix, msg);
    if let Err(err) = binding_for(ags.scope, ags.namespace.as_deref(), ags.name.as_deref(), "") {
        f.fail_err("", &err.context(p("metadata".into())));
        return;
    }
    if ags.encrypted.is_empty() {
        f.warnings.push(p("spec.encryptedData is empty".into()));
    }
    let mut stale = Vec::new();
    let mut opened: BTreeMap<String, Zeroizing<Vec<u8>>> = BTreeMap::new();
    for (k, v) in &ags.encrypted {
        let kids = match sealed::kids_of(v) {
            Ok(k) => k,
            Err(err) => {
                f.fail(p(format!("spec.encryptedData.{k}: {err}")), Exit::Integrity);
                continue;
            }
        };
        if ctx.env.is_some() {
            let unknown: Vec<String> = kids
                .iter()
                .filter(|kid| !ctx.known.contains(kid))
                .map(|k| k.to_string())
                .collect();
            if !unknown.is_empty() {
                f.fail(
                    p(format!(
                        "spec.encryptedData.{k} is sealed to key id(s) {} unknown to environment {}",
                        unknown.join(", "),
                        ctx.env.map(|e| e.name.as_str()).unwrap_or("")
                    )),
                    Exit::NoMatchingKey,
                );
            }
            if let Some(cur) = &ctx.current
                && !kids.contains(cur)
            {
                stale.push(k.clone());
            }
        }
        if !ctx.ids.is_empty() {
            match ags.open_value(k, v, ring) {
                Ok(plain) => {
                    opened.insert(k.clone(), plain);
                }
                Err(err) => f.fail_err(prefix, &err),
            }
        }
    }
    let all_opened = !ctx.ids.is_empty() && opened.len() == ags.encrypted.len();
    check_secret_rules(ags, all_opened.then_some(&opened), f, prefix);
    if !stale.is_empty() {
        f.warnings.push(p(format!(
            "not sealed to the environment's current key: {} (run `kage reencrypt`)",
            stale.join(", ")
        )));
    }
}

/// Kubernetes' rules on the Secret the controller will write (kage-core's `ValidateSecret`, as
/// the controller checks it): on the values when every one was opened, else on the keys, names,
/// labels, annotations and type alone (the rules that need a value are then skipped).
fn check_secret_rules(
    ags: &AgeSecret,
    opened: Option<&BTreeMap<String, Zeroizing<Vec<u8>>>>,
    f: &mut Findings,
    prefix: &str,
) {
    fn borrow(m: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
        m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }
    let labels = borrow(&ags.template_labels);
    let annotations = borrow(&ags.template_annotations);
    let mut data: Vec<(&str, &[u8])> = ags
        .template_data
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect();
    data.extend(ags.encrypted.keys().map(|k| {
        let value = opened
            .and_then(|o| o.get(k))
            .map_or(&[][..], |v| v.as_slice());
        (k.as_str(), value)
    }));
    let fields = k8s::SecretFields {
        name: ags.name.as_deref(),
        namespace: ags.namespace.as_deref(),
        labels: &labels,
        annotations: &annotations,
        type_: ags.secret_type.as_deref(),
        immutable: ags.immutable,
        data: &data,
    };
    for e in k8s::validate_secret(&fields) {
        let needs_value = e.bad_value.as_deref() == Some("<secret contents redacted>")
            || (e.type_ == k8s::ErrorType::Required
                && data.iter().any(|(k, _)| e.field == format!("data[{k}]")));
        if opened.is_none() && needs_value {
            continue;
        }
        f.fail(
            pre(
                prefix,
                format!("the API server would refuse the Secret (Kubernetes ValidateSecret): {e}"),
            ),
            Exit::Usage,
        );
    }
}

fn pre(prefix: &str, msg: String) -> String {
    if prefix.is_empty() {
        msg
    } else {
        format!("{prefix}: {msg}")
    }
}

/// `kage validate --cluster`: POSTs each AgeSecret to the controller's `/v1/verify`.
pub fn run_cluster(
    cluster: &dyn crate::cluster::ClusterAccess,
    files: &[std::path::PathBuf],
) -> Result<Exit> {
    let mut report = String::new();
    let mut exit = Exit::Ok;
    for file in files {
        let (line, code) = match verify_file(cluster, file) {
            Ok(r) => r,
            Err(e) => {
                let r = classify(&e);
                if r.exit == Exit::Cluster {
                    return Err(e);
                }
                (
                    format!(
                        "{}: error: {}\n",
                        file.display(),
                        r.message.unwrap_or_default()
                    ),
                    r.exit,
                )
            }
        };
        report.push_str(&line);
        if exit == Exit::Ok {
            exit = code;
        }
    }
    crate::io::write_stdout(report.as_bytes())?;
    Ok(exit)
}

/// The documents of a YAML or JSON file as JSON values (`kind: List` flattened).
pub fn json_docs(bytes: &[u8]) -> Result<Vec<serde_json::Value>> {
    let format = crate::tree::Format::detect(bytes);
    kage_core::limits::check_size(bytes.len(), format.name())?;
    let text = std::str::from_utf8(bytes).map_err(|_| crate::exit::user("not UTF-8 text"))?;
    let docs: Vec<serde_json::Value> = if format == crate::tree::Format::Json {
        kage_core::limits::scan_json(text)?;
        kage_core::document::check_json_unique_keys(text)
            .map_err(|e| crate::exit::user(e.to_string()))?;
        serde_json::Deserializer::from_str(text)
            .into_iter::<serde_json::Value>()
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| crate::exit::user(format!("malformed JSON: {e}")))?
    } else {
        let docs: Vec<Option<serde_json::Value>> =
            serde_saphyr::from_multiple_with_options(text, kage_core::limits::yaml_options())
                .map_err(|e| -> anyhow::Error {
                    match kage_core::limits::from_yaml_error(&e) {
                        Some(limit) => limit.into(),
                        None => crate::exit::user("malformed YAML").into(),
                    }
                })?;
        docs.into_iter()
            .flatten()
            .filter(|v| !v.is_null())
            .collect()
    };
    let mut out = Vec::new();
    for d in docs {
        match d.get("items").and_then(|i| i.as_array()) {
            Some(items)
                if d.get("kind")
                    .and_then(|k| k.as_str())
                    .is_some_and(|k| k.ends_with("List")) =>
            {
                out.extend(items.iter().cloned())
            }
            _ => out.push(d),
        }
    }
    Ok(out)
}

fn verify_file(cluster: &dyn crate::cluster::ClusterAccess, file: &Path) -> Result<(String, Exit)> {
    let bytes = crate::io::read_file(file)?;
    let docs = json_docs(&bytes)?;
    let mut out = String::new();
    let mut exit = Exit::Ok;
    let mut seen = 0;
    for doc in docs {
        if doc.get("kind").and_then(|k| k.as_str()) != Some("AgeSecret") {
            continue;
        }
        seen += 1;
        let name = format!(
            "{}/{}",
            doc.pointer("/metadata/namespace")
                .and_then(|v| v.as_str())
                .unwrap_or("-"),
            doc.pointer("/metadata/name")
                .and_then(|v| v.as_str())
                .unwrap_or("-")
        );
        let body = serde_json::to_vec(&doc)?;
        let answer = cluster.controller_post("/v1/verify", body)?;
        let v: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        if answer.status != 200 || v.get("ok").is_none() {
            out.push_str(&format!(
                "{}: {name}: FAILED: controller answered {}: {}\n",
                file.display(),
                answer.status,
                crate::cluster::error_text(&answer.body)
            ));
            if exit == Exit::Ok {
                exit = Exit::Error;
            }
            continue;
        }
        let kids = v
            .get("keyIds")
            .and_then(|k| k.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        if v["ok"].as_bool() == Some(true) {
            out.push_str(&format!(
                "{}: {name}: ok (cluster can decrypt; kids {kids})\n",
                file.display()
            ));
        } else {
            let reason = v.get("reason").and_then(|r| r.as_str()).unwrap_or("Failed");
            let message = v.get("message").and_then(|r| r.as_str()).unwrap_or("");
            out.push_str(&format!(
                "{}: {name}: FAILED: {reason}: {message}\n",
                file.display()
            ));
            let code = match reason {
                "UnknownKey" => Exit::NoMatchingKey,
                "DecryptFailed" => Exit::Integrity,
                "ScopeMismatch" => Exit::BindingMismatch,
                _ => Exit::Error,
            };
            if exit == Exit::Ok {
                exit = code;
            }
        }
    }
    if seen == 0 {
        out.push_str(&format!("{}: no AgeSecret to verify\n", file.display()));
        exit = Exit::Error;
    }
    Ok((out, exit))
}
