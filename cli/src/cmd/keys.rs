//! `kage keys list` (offline) and the cluster subcommands `fetch`, `rotate`, `retire`, `usage`,
//! `backup` and `restore` (through [`ClusterAccess`]).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kage_core::keys::{Kid, Recipient};
use kage_core::sealed;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::args::{
    KeysBackupArgs, KeysFetchArgs, KeysListArgs, KeysRestoreArgs, KeysRetireArgs, KeysRotateArgs,
    KeysUsageArgs,
};
use crate::cluster::{
    ClusterAccess, Created, KeySecret, PublicKey, ROTATE_ANNOTATION, active_recipients, cluster_err,
};
use crate::cmd::Global;
use crate::config::Config;
use crate::exit::{Exit, user};
use crate::io::{Sensitivity, write_atomic};
use crate::keysrc::require_identities;

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

/// Runs `kage keys fetch`.
pub fn run_fetch(args: KeysFetchArgs, global: &Global) -> Result<Exit> {
    // With --write-env, that environment's `cluster:` says which cluster to ask.
    let env =
        crate::config::Config::named_env(global.config.as_deref(), args.write_env.as_deref())?;
    let cluster = crate::cluster::connect_env(&args.cluster, env.as_ref())?;
    fetch(&cluster, args.write_env.as_deref(), global)
}

/// `kage keys fetch` against any cluster access.
pub fn fetch(
    cluster: &dyn ClusterAccess,
    write_env: Option<&str>,
    global: &Global,
) -> Result<Exit> {
    let keys = cluster.public_keys()?;
    let mut out = String::from("KID\tSTATUS\tCREATED\tRECIPIENT\n");
    for k in &keys {
        let status = if k.current {
            "current"
        } else {
            k.status.as_str()
        };
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            k.kid, status, k.created, k.recipient
        ));
    }
    if let Some(env) = write_env {
        let recipients: Vec<String> = active_recipients(&keys)?
            .iter()
            .map(|r| r.as_str().to_string())
            .collect();
        let cfg = Config::require(global.config.as_deref())?;
        cfg.env(env)?;
        let path = cfg.root.join(crate::config::FILE_NAME);
        let path = global.config.clone().unwrap_or(path);
        let text = String::from_utf8(crate::io::read_file(&path)?)
            .map_err(|_| user(format!("{} is not UTF-8", path.display())))?;
        let new = set_env_recipients(&text, env, &recipients)
            .with_context(|| format!("updating {}", path.display()))?;
        let check = Config::parse(&path, new.as_bytes())
            .with_context(|| format!("updating {}", path.display()))?;
        if check.env(env)?.recipients != recipients {
            return Err(user(format!(
                "could not update environment {env} in {}",
                path.display()
            ))
            .hint("edit `recipients` by hand")
            .into());
        }
        if new != text {
            write_atomic(&path, new.as_bytes(), Sensitivity::Public)?;
            eprintln!("{}: environment {env}: recipients updated", path.display());
        } else {
            eprintln!("{}: environment {env}: already current", path.display());
        }
    }
    crate::io::write_stdout(out.as_bytes())?;
    Ok(Exit::Ok)
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// Replaces (or adds) the `recipients:` of environment `env` in `.kage.yaml` text, keeping every
/// other line (comments included) as written. Handles block-style environments (`- name: env`).
pub fn set_env_recipients(text: &str, env: &str, recipients: &[String]) -> Result<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let flow = format!(
        "[{}]",
        recipients
            .iter()
            .map(|r| format!("\"{r}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let unquote = |v: &str| v.trim().trim_matches('"').trim_matches('\'').to_string();
    // The environment's first line: `- name: env`, or `name: env` inside a `-` item.
    let mut start = None;
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start_matches(' ');
        let t = t.strip_prefix("- ").map(|r| r.trim_start()).unwrap_or(t);
        if let Some(v) = t.strip_prefix("name:")
            && unquote(v.split(" #").next().unwrap_or(v)) == env
        {
            let key_indent = l.len() - t.len();
            start = Some((i, key_indent));
            break;
        }
    }
    let Some((name_line, key_indent)) = start else {
        return Err(user(format!(
            "environment {env} is not written as `- name: {env}`"
        ))
        .hint("edit `recipients` by hand")
        .into());
    };
    // The item: back to its `- ` line, forward until a line indented less than its keys.
    let mut first = name_line;
    while !lines[first].trim_start().starts_with("- ") && first > 0 {
        first -= 1;
    }
    let mut end = name_line + 1;
    while end < lines.len() {
        let l = lines[end];
        if !is_blank_or_comment(l) && indent_of(l) < key_indent {
            break;
        }
        end += 1;
    }
    fn key_at(l: &str, key_indent: usize) -> Option<&str> {
        let t = l.trim_start_matches(' ');
        let t2 = t.strip_prefix("- ").map(|r| r.trim_start()).unwrap_or(t);
        (l.len() - t2.len() == key_indent && t2.starts_with("recipients:")).then_some(t2)
    }
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    let mut done = false;
    while i < lines.len() {
        let l = lines[i];
        if !done
            && i >= first
            && i < end
            && let Some(t) = key_at(l, key_indent)
        {
            let prefix = &l[..l.len() - t.len()];
            let rest = t["recipients:".len()..].trim();
            out.push(format!("{prefix}recipients: {flow}\n"));
            i += 1;
            if rest.is_empty() || rest.starts_with('#') {
                // Block sequence: drop its items (more indented, or `- ` at the key's indent).
                while i < end {
                    let n = lines[i];
                    if is_blank_or_comment(n) {
                        break;
                    }
                    let ind = indent_of(n);
                    if ind > key_indent || (ind == key_indent && n.trim_start().starts_with("- ")) {
                        i += 1;
                    } else {
                        break;
                    }
                }
            } else if rest.starts_with('[') && !rest.contains(']') {
                while i < end && !lines[i - 1].contains(']') {
                    i += 1;
                }
            }
            done = true;
            continue;
        }
        out.push(l.to_string());
        i += 1;
    }
    if !done {
        let mut with: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        if !with[name_line].ends_with('\n') {
            with[name_line].push('\n');
        }
        with.insert(
            name_line + 1,
            format!("{}recipients: {flow}\n", " ".repeat(key_indent)),
        );
        return Ok(with.concat());
    }
    Ok(out.concat())
}

/// A token for `kage.dev/rotate`: the time, to the millisecond.
fn rotation_token() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Runs `kage keys rotate`.
pub fn run_rotate(args: KeysRotateArgs, _global: &Global) -> Result<Exit> {
    let cluster = crate::cluster::connect(&args.cluster)?;
    rotate(&cluster, Duration::from_secs(args.wait))
}

/// `kage keys rotate` against any cluster access.
pub fn rotate(cluster: &dyn ClusterAccess, wait: Duration) -> Result<Exit> {
    let before: Vec<String> = cluster.public_keys()?.into_iter().map(|k| k.kid).collect();
    let token = rotation_token();
    cluster.request_rotation(&token)?;
    eprintln!("rotation requested ({ROTATE_ANNOTATION}={token}); waiting for the new key");
    let deadline = Instant::now() + wait;
    loop {
        let keys = cluster.public_keys()?;
        if let Some(k) = keys.iter().find(|k| k.current)
            && !before.contains(&k.kid)
        {
            crate::io::write_stdout(format!("{}\t{}\n", k.kid, k.recipient).as_bytes())?;
            eprintln!("hint: run `kage keys fetch --write-env ENV` to seal new values to it");
            return Ok(Exit::Ok);
        }
        if Instant::now() >= deadline {
            return Err(cluster_err(format!(
                "no new key after {}s (the request {ROTATE_ANNOTATION}={token} stays recorded)",
                wait.as_secs()
            ))
            .hint("is kage-controller running and leader? check its logs, or raise --wait")
            .into());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Runs `kage keys retire`.
pub fn run_retire(args: KeysRetireArgs, _global: &Global) -> Result<Exit> {
    let cluster = crate::cluster::connect(&args.cluster)?;
    retire(&cluster, &args.kid, args.force)
}

/// `kage keys retire` against any cluster access.
pub fn retire(cluster: &dyn ClusterAccess, kid: &str, force: bool) -> Result<Exit> {
    let keys = cluster.key_secrets()?;
    let Some(key) = keys.iter().find(|k| k.kid() == kid) else {
        let known: Vec<String> = keys.iter().map(|k| k.kid()).collect();
        return Err(user(format!(
            "no key {kid} in namespace {} (keys: {})",
            cluster.namespace(),
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ))
        .into());
    };
    if key.status() == "retired" {
        eprintln!("key {kid} is already retired");
        return Ok(Exit::Ok);
    }
    let users: Vec<String> = cluster
        .agesecret_usage()?
        .into_iter()
        .filter(|u| u.kids.iter().any(|k| k == kid))
        .map(|u| format!("{}/{}", u.namespace, u.name))
        .collect();
    if !users.is_empty() && !force {
        return Err(user(format!(
            "key {kid} is still used by {} AgeSecret(s): {}",
            users.len(),
            users.join(", ")
        ))
        .hint("re-encrypt them first (`kage reencrypt FILE…`, then apply), or pass --force")
        .into());
    }
    cluster.set_key_status(&key.name, "retired")?;
    if !users.is_empty() {
        eprintln!(
            "warning: {} AgeSecret(s) sealed to {kid} will stop decrypting",
            users.len()
        );
    }
    eprintln!(
        "key {kid} retired (Secret {}/{})",
        cluster.namespace(),
        key.name
    );
    Ok(Exit::Ok)
}

/// Runs `kage keys usage`.
pub fn run_usage(args: KeysUsageArgs, _global: &Global) -> Result<Exit> {
    let mut rows: Vec<(String, String)> = Vec::new();
    if args.files.is_empty() {
        let cluster = crate::cluster::connect(&args.cluster)?;
        let keys: Vec<PublicKey> = cluster.public_keys().unwrap_or_default();
        let usage = cluster.agesecret_usage()?;
        for u in usage {
            for k in &u.kids {
                rows.push((k.clone(), format!("{}/{}", u.namespace, u.name)));
            }
        }
        for k in keys {
            if !rows.iter().any(|(kid, _)| kid == &k.kid) {
                rows.push((k.kid, "-".into()));
            }
        }
    } else {
        for file in &args.files {
            for kid in file_kids(file)? {
                rows.push((kid, file.display().to_string()));
            }
        }
    }
    rows.sort();
    rows.dedup();
    let mut out = String::from("KID\tUSED BY\n");
    for (kid, by) in rows {
        out.push_str(&format!("{kid}\t{by}\n"));
    }
    crate::io::write_stdout(out.as_bytes())?;
    Ok(Exit::Ok)
}

/// The kids named in clear by a file's sealed values (and SOPS age recipients).
fn file_kids(file: &std::path::Path) -> Result<Vec<String>> {
    let bytes = crate::io::read_file(file)?;
    let mut kids = Vec::new();
    if crate::sopsdoc::is_sops(&bytes) {
        let text = String::from_utf8_lossy(&bytes);
        for word in text.split(|c: char| !c.is_ascii_alphanumeric()) {
            if word.starts_with("age1") && word.len() > 50 {
                kids.push(Kid::of_recipient_str(word).as_str().to_string());
            }
        }
    } else {
        let (_, docs) =
            crate::raw::parse_docs(&bytes).with_context(|| file.display().to_string())?;
        for doc in crate::raw::flatten(docs) {
            let values = doc
                .spec
                .as_ref()
                .map(|s| crate::raw::strings(&s.encrypted_data))
                .unwrap_or_default();
            for (key, v) in values {
                let ks = sealed::kids_of(&v)
                    .with_context(|| format!("{}: spec.encryptedData.{key}", file.display()))?;
                kids.extend(ks.into_iter().map(|k| k.as_str().to_string()));
            }
        }
    }
    kids.sort();
    kids.dedup();
    Ok(kids)
}

/// The backup bundle (the plaintext inside the age file): documented in docs/cli.md.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Backup {
    api_version: String,
    kind: String,
    namespace: String,
    created: String,
    keys: Vec<KeySecret>,
}

const BACKUP_API: &str = "kage.dev/v1alpha1";
const BACKUP_KIND: &str = "KeyBackup";

/// Runs `kage keys backup`.
pub fn run_backup(args: KeysBackupArgs, _global: &Global) -> Result<Exit> {
    let mut recipients = Vec::new();
    for r in &args.recipients {
        recipients.push(
            r.parse::<Recipient>()
                .map_err(|e| user(format!("-r {r}: {e}")).exit(Exit::Usage))?,
        );
    }
    let cluster = crate::cluster::connect(&args.cluster)?;
    backup(&cluster, &recipients, &args.output)
}

/// `kage keys backup` against any cluster access.
pub fn backup(
    cluster: &dyn ClusterAccess,
    recipients: &[Recipient],
    output: &std::path::Path,
) -> Result<Exit> {
    let keys = cluster.key_secrets()?;
    if keys.is_empty() {
        return Err(user(format!(
            "no key Secrets in namespace {}",
            cluster.namespace()
        ))
        .hint("pass --controller-namespace NS")
        .into());
    }
    let n = keys.len();
    let bundle = Backup {
        api_version: BACKUP_API.into(),
        kind: BACKUP_KIND.into(),
        namespace: cluster.namespace().into(),
        created: jiff::Timestamp::now().to_string(),
        keys,
    };
    let plain = Zeroizing::new(serde_json::to_vec_pretty(&bundle).context("encoding the backup")?);
    let rs: Vec<&dyn age::Recipient> = recipients
        .iter()
        .map(|r| r.as_age() as &dyn age::Recipient)
        .collect();
    let enc = age::Encryptor::with_recipients(rs.into_iter()).context("encrypting the backup")?;
    let mut out = Vec::new();
    {
        let armor =
            age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
                .context("encrypting the backup")?;
        let mut w = enc.wrap_output(armor).context("encrypting the backup")?;
        std::io::Write::write_all(&mut w, &plain).context("encrypting the backup")?;
        w.finish()
            .and_then(|a| a.finish())
            .context("encrypting the backup")?;
    }
    write_atomic(output, &out, Sensitivity::Plaintext)?;
    eprintln!(
        "{}: {n} key(s) of namespace {} backed up",
        output.display(),
        cluster.namespace()
    );
    Ok(Exit::Ok)
}

/// Runs `kage keys restore`.
pub fn run_restore(args: KeysRestoreArgs, _global: &Global) -> Result<Exit> {
    let ids = require_identities(&args.identities)?;
    let bytes = crate::io::read_file(&args.file)?;
    let plain = decrypt_backup(&bytes, &ids).with_context(|| args.file.display().to_string())?;
    let bundle: Backup = serde_json::from_slice(&plain).map_err(|e| {
        user(format!(
            "{}: not a kage key backup: {e}",
            args.file.display()
        ))
    })?;
    if bundle.kind != BACKUP_KIND {
        return Err(user(format!("{}: not a kage key backup", args.file.display())).into());
    }
    let cluster = crate::cluster::connect(&args.cluster)?;
    restore(&cluster, &bundle.keys)
}

fn decrypt_backup(bytes: &[u8], ids: &[kage_core::keys::Identity]) -> Result<Zeroizing<Vec<u8>>> {
    let dec = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(bytes))
        .map_err(|e| user(format!("not an age file: {e}")))?;
    let list: Vec<&dyn age::Identity> = ids
        .iter()
        .map(|i| i.as_age() as &dyn age::Identity)
        .collect();
    let mut r = dec.decrypt(list.into_iter()).map_err(|e| {
        user(format!("cannot decrypt the backup: {e}"))
            .exit(Exit::NoMatchingKey)
            .hint("pass the admin identity the backup was made for with -i")
    })?;
    let mut out = Zeroizing::new(Vec::new());
    std::io::Read::read_to_end(&mut r, &mut out)
        .map_err(|e| user(format!("the backup is damaged: {e}")).exit(Exit::Integrity))?;
    Ok(out)
}

/// `kage keys restore` against any cluster access.
pub fn restore(cluster: &dyn ClusterAccess, keys: &[KeySecret]) -> Result<Exit> {
    for k in keys {
        match cluster.create_key_secret(k)? {
            Created::Created => eprintln!("key {}: restored ({})", k.kid(), k.status()),
            Created::Unchanged => eprintln!("key {}: already present", k.kid()),
        }
    }
    Ok(Exit::Ok)
}
