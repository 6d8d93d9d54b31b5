//! The SOPS form, through kage-core's document model and SOPS engine.
//!
//! - `kage seal --sops`: a Secret stays a Secret (`encrypted_regex: ^(data|stringData)$`, which
//!   Flux decrypts natively); any other document uses the sops default selection or the flags.
//! - `kage seal --sops --as-agesecret`: a Secret becomes an AgeSecret in SOPS form: values under
//!   `spec.stringData` (UTF-8 text) or `spec.data` (base64), an encrypted `spec.binding`,
//!   `encrypted_regex: ^(data|stringData|binding)$`, `mac_only_encrypted: true`, every mapping's
//!   keys sorted (DESIGN §2.2).
//! - files are written in the layout the real sops writes (4-space YAML, tab-indented JSON).

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kage_core::document::{self, Document, EmitOptions, Format as CoreFormat, MapItem, Node};
use kage_core::keys::{Identity, Recipient};
use kage_core::sealed::{self, Scope};
use kage_core::sops::{self, EncryptOptions, Selection, SopsFile};
use zeroize::Zeroizing;

use crate::agesecret::{API_VERSION, secret_to_node};
use crate::args::SopsArgs;
use crate::cmd::seal::SopsSealOptions;
use crate::cmd::validate::{Context as CheckContext, Findings};
use crate::exit::{Exit, user};
use crate::keysrc::Target;
use crate::manifest::{self, LAST_APPLIED, Secret};
use crate::tree::{self, Format};

/// The selection kage writes for SOPS AgeSecrets.
pub const AGESECRET_REGEX: &str = "^(data|stringData|binding)$";

fn core_format(f: Format) -> CoreFormat {
    match f {
        Format::Yaml => CoreFormat::Yaml,
        Format::Json => CoreFormat::Json,
    }
}

fn parse(bytes: &[u8]) -> Result<(Format, Vec<Document>)> {
    let format = Format::detect(bytes);
    let docs = document::parse(bytes, core_format(format))?;
    Ok((format, docs))
}

fn emit_sops(docs: &[Document], format: Format) -> Result<String> {
    Ok(document::emit(
        docs,
        core_format(format),
        &EmitOptions::sops(),
    )?)
}

/// The one-document SOPS file `bytes` with its `sops` metadata replaced by `metadata` (JSON, as
/// the controller's `/v1/reencrypt` returns it), written in kage's metadata layout; every other
/// line of the file is kept as it was (the values and the MAC do not change when only the data
/// key is wrapped for other recipients).
pub fn replace_metadata(bytes: &[u8], metadata: &serde_json::Value) -> Result<String> {
    let (format, mut docs) = parse(bytes)?;
    let meta = sops::Metadata::from_node(&Node::from_json_value(metadata))?;
    let [doc] = docs.as_mut_slice() else {
        return Err(crate::exit::user("expected one SOPS document").into());
    };
    doc.root
        .insert("sops", meta.to_node(format == Format::Json));
    emit_sops(&docs, format)
}

/// Whether the bytes hold a SOPS document.
pub fn is_sops(bytes: &[u8]) -> bool {
    crate::raw::looks_like_sops(bytes)
        && parse(bytes).is_ok_and(|(_, docs)| docs.iter().any(sops::is_sops_document))
}

fn kind(doc: &Document) -> Option<&str> {
    doc.root.get("kind").and_then(Node::as_str)
}

/// The selection for `kage seal --sops` from the flags, or the default for the document.
fn selection(opts: &SopsArgs, secret: bool) -> Selection {
    if let Some(r) = &opts.encrypted_regex {
        Selection::EncryptedRegex(r.clone())
    } else if let Some(s) = &opts.encrypted_suffix {
        Selection::EncryptedSuffix(s.clone())
    } else if let Some(s) = &opts.unencrypted_suffix {
        Selection::UnencryptedSuffix(s.clone())
    } else if let Some(r) = &opts.unencrypted_regex {
        Selection::UnencryptedRegex(r.clone())
    } else if secret {
        Selection::kubernetes_secret()
    } else {
        Selection::default()
    }
}

/// `kage seal --sops` of one input.
pub fn seal_bytes(
    bytes: &[u8],
    opts: &SopsArgs,
    target: &Target,
    so: SopsSealOptions<'_>,
) -> Result<String> {
    let (format, mut docs) = parse(bytes)?;
    if docs.iter().any(sops::is_sops_document) {
        return Err(user("already encrypted: the document has a `sops` block")
            .hint("use `kage edit`, `kage set` or `kage reencrypt` to change it")
            .exit(Exit::AlreadyEncrypted)
            .into());
    }
    let secrets = docs.iter().filter(|d| kind(d) == Some("Secret")).count();
    if secrets == 0 && opts.as_agesecret {
        return Err(user(
            "--as-agesecret turns Secret manifests into AgeSecrets, and this input has none",
        )
        .into());
    }
    if secrets > 0 {
        // the same checks as the sealed form, on the typed reading of the same bytes
        let (_, raw) = crate::raw::parse_docs(bytes)?;
        let mut checked = Vec::new();
        for (i, d) in raw.iter().enumerate() {
            if d.kind.as_deref() == Some("Secret") {
                let s = crate::exit::in_doc(
                    manifest::secret_from_raw(d).and_then(|s| overridden(s, &so)),
                    i,
                    raw.len(),
                )?;
                checked.push(s);
            }
        }
        if opts.as_agesecret {
            if secrets != docs.len() {
                return Err(user("--as-agesecret needs every document to be a Secret").into());
            }
            let scope = so.scope.unwrap_or_else(|| target.default_scope());
            let enc = seal_agesecrets(&checked, scope, opts, target)?;
            return emit_sops(&enc, format);
        }
        let mut it = checked.iter();
        for doc in docs.iter_mut().filter(|d| kind(d) == Some("Secret")) {
            let s = it.next().expect("one checked Secret per Secret document");
            strip_secret_noise(doc, s);
        }
    } else if so.name.is_some() || so.namespace.is_some() {
        return Err(
            user("--name and --namespace apply to Secret manifests only")
                .exit(Exit::Usage)
                .into(),
        );
    }
    let enc = sops::encrypt(
        &docs,
        &EncryptOptions {
            key_groups: vec![target.recipients.clone()],
            shamir_threshold: 0,
            selection: selection(opts, secrets > 0),
            mac_only_encrypted: opts.mac_only_encrypted,
        },
    )?;
    emit_sops(&enc, format)
}

/// Applies `--name`/`--namespace`/`--type` and checks the Secret.
fn overridden(mut s: Secret, so: &SopsSealOptions<'_>) -> Result<Secret> {
    manifest::prepare(&mut s, so.name, so.namespace, so.secret_type)?;
    Ok(s)
}

/// Drops what a live object carries (and kubectl's last-applied copy, which holds plaintext),
/// and applies the name/namespace overrides.
fn strip_secret_noise(doc: &mut Document, s: &Secret) {
    doc.root.remove("status");
    if let Some(meta) = doc.root.get_mut("metadata") {
        for k in [
            "managedFields",
            "ownerReferences",
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "selfLink",
        ] {
            meta.remove(k);
        }
        if let Some(a) = meta.get_mut("annotations") {
            a.remove(LAST_APPLIED);
            if a.entries().next().is_none() {
                meta.remove("annotations");
            }
        }
    } else {
        doc.root.insert("metadata", Node::map());
    }
    let meta = doc.root.get_mut("metadata").expect("inserted above");
    if let Some(n) = &s.name {
        meta.insert("name", Node::string(n));
    }
    if let Some(ns) = &s.namespace {
        meta.insert("namespace", Node::string(ns));
    }
    if let Some(t) = &s.secret_type {
        doc.root.insert("type", Node::string(t));
    }
}

/// `kage seal --sops` of a Secret built from literals.
pub fn seal_secret(
    secret: &Secret,
    opts: &SopsArgs,
    target: &Target,
    so: SopsSealOptions<'_>,
) -> Result<String> {
    if opts.as_agesecret {
        let scope = so.scope.unwrap_or_else(|| target.default_scope());
        let enc = seal_agesecrets(std::slice::from_ref(secret), scope, opts, target)?;
        return emit_sops(&enc, Format::Yaml);
    }
    let doc = to_core(&secret_to_node(secret, true));
    let enc = sops::encrypt(
        &[Document::new(doc)],
        &EncryptOptions {
            key_groups: vec![target.recipients.clone()],
            shamir_threshold: 0,
            selection: selection(opts, true),
            mac_only_encrypted: opts.mac_only_encrypted,
        },
    )?;
    emit_sops(&enc, Format::Yaml)
}

/// Secrets to AgeSecrets in SOPS form.
fn seal_agesecrets(
    secrets: &[Secret],
    scope: Scope,
    opts: &SopsArgs,
    target: &Target,
) -> Result<Vec<Document>> {
    if opts.encrypted_regex.is_some()
        || opts.encrypted_suffix.is_some()
        || opts.unencrypted_regex.is_some()
        || opts.unencrypted_suffix.is_some()
    {
        return Err(user(format!(
            "an AgeSecret in SOPS form always uses encrypted_regex {AGESECRET_REGEX}"
        ))
        .exit(Exit::Usage)
        .into());
    }
    let mut docs = Vec::new();
    for s in secrets {
        crate::agesecret::binding_for(scope, s.namespace.as_deref(), s.name.as_deref(), "")?;
        let mut doc = Document::new(agesecret_node(s, scope));
        doc.root.sort_keys();
        docs.push(doc);
    }
    let enc = sops::encrypt(
        &docs,
        &EncryptOptions {
            key_groups: vec![target.recipients.clone()],
            shamir_threshold: 0,
            selection: Selection::EncryptedRegex(AGESECRET_REGEX.into()),
            mac_only_encrypted: true,
        },
    )?;
    Ok(enc)
}

fn agesecret_node(s: &Secret, scope: Scope) -> Node {
    let mut meta = Vec::new();
    if let Some(n) = &s.name {
        meta.push(("name", tree::Node::str(n)));
    }
    if let Some(ns) = &s.namespace {
        meta.push(("namespace", tree::Node::str(ns)));
    }
    let (mut data, mut sdata) = (Vec::new(), Vec::new());
    for (k, v) in &s.data {
        match std::str::from_utf8(v) {
            Ok(t) if t.chars().all(|c| !c.is_control() || c == '\n') => {
                sdata.push((k.clone(), tree::Node::str(t)))
            }
            _ => data.push((k.clone(), tree::Node::str(STANDARD.encode(v)))),
        }
    }
    let mut template = vec![("type", tree::Node::str(s.type_or_opaque()))];
    if let Some(i) = s.immutable {
        template.push(("immutable", tree::Node::Bool(i)));
    }
    let mut tmeta = Vec::new();
    if !s.labels.is_empty() {
        tmeta.push(("labels", crate::agesecret::str_map(&s.labels)));
    }
    if !s.annotations.is_empty() {
        tmeta.push(("annotations", crate::agesecret::str_map(&s.annotations)));
    }
    if !tmeta.is_empty() {
        template.push(("metadata", tree::Node::map(tmeta)));
    }
    let mut spec = vec![
        (
            "binding",
            tree::Node::str(sealed::binding_text(
                scope,
                s.namespace.as_deref().unwrap_or(""),
                s.name.as_deref().unwrap_or(""),
            )),
        ),
        ("scope", tree::Node::str(scope.as_str())),
        ("template", tree::Node::map(template)),
    ];
    if !data.is_empty() {
        spec.push(("data", tree::Node::Map(data)));
    }
    if !sdata.is_empty() {
        spec.push(("stringData", tree::Node::Map(sdata)));
    }
    to_core(&tree::Node::map([
        ("apiVersion", tree::Node::str(API_VERSION)),
        ("kind", tree::Node::str("AgeSecret")),
        ("metadata", tree::Node::map(meta)),
        ("spec", tree::Node::map(spec)),
    ]))
}

/// The CLI's output tree as a core document node (same order).
fn to_core(n: &tree::Node) -> Node {
    use kage_core::document::{Scalar, SeqItem};
    match n {
        tree::Node::Map(m) => Node::Map(
            m.iter()
                .map(|(k, v)| MapItem::Entry(k.clone(), to_core(v)))
                .collect(),
        ),
        tree::Node::Seq(s) => Node::Seq(s.iter().map(|v| SeqItem::Value(to_core(v))).collect()),
        tree::Node::Str(s) => Node::string(s),
        tree::Node::Num(n) => Node::Scalar(
            n.parse::<i64>()
                .map(Scalar::Int)
                .or_else(|_| n.parse::<f64>().map(Scalar::Float))
                .unwrap_or_else(|_| Scalar::Str(n.clone())),
        ),
        tree::Node::Bool(b) => Node::Scalar(Scalar::Bool(*b)),
        tree::Node::Null => Node::Scalar(Scalar::Null),
    }
}

/// Opens a SOPS file.
fn open(bytes: &[u8], ids: &[Identity]) -> Result<(Format, Vec<Document>, SopsFile)> {
    let (format, docs) = parse(bytes)?;
    let file = SopsFile::open(&docs, ids)?;
    Ok((format, docs, file))
}

/// Checks a decrypted SOPS AgeSecret's `spec.binding` against its metadata; `Ok(false)` when
/// it has no binding.
fn check_binding(doc: &Document) -> Result<bool> {
    let Some(text) = doc.root.get_path(&["spec", "binding"]) else {
        return Ok(false);
    };
    let text = text
        .as_str()
        .ok_or_else(|| user("spec.binding must be a string"))?;
    let (scope, ns, name) = sealed::parse_binding_text(text)?;
    let meta_ns = doc
        .root
        .get_path(&["metadata", "namespace"])
        .and_then(Node::as_str);
    let meta_name = doc
        .root
        .get_path(&["metadata", "name"])
        .and_then(Node::as_str);
    let clear_scope = doc
        .root
        .get_path(&["spec", "scope"])
        .and_then(Node::as_str)
        .unwrap_or(scope.as_str());
    let expected = sealed::binding_text(scope, meta_ns.unwrap_or(""), meta_name.unwrap_or(""));
    if expected != text || clear_scope != scope.as_str() {
        return Err(kage_core::Error::BindingMismatch {
            expected: format!(
                "{clear_scope} {}/{}",
                meta_ns.unwrap_or("-"),
                meta_name.unwrap_or("-")
            ),
            found: format!(
                "{} {}/{}",
                scope.as_str(),
                ns.as_deref().unwrap_or("-"),
                name.as_deref().unwrap_or("-")
            ),
        }
        .into());
    }
    Ok(true)
}

/// A decrypted SOPS AgeSecret as a Secret.
fn agesecret_to_secret(doc: &Document) -> Result<Secret> {
    let json = doc.to_json_value();
    let (_, raw) = crate::raw::parse_docs(
        serde_json::to_string(&json)
            .expect("JSON values serialise")
            .as_bytes(),
    )?;
    let raw = raw
        .into_iter()
        .next()
        .ok_or_else(|| user("empty document"))?;
    let mut s = Secret {
        name: raw.metadata.as_ref().and_then(|m| m.name.clone()),
        namespace: raw.metadata.as_ref().and_then(|m| m.namespace.clone()),
        ..Secret::default()
    };
    let spec = json.get("spec").cloned().unwrap_or_default();
    if let Some(t) = spec.get("template") {
        s.secret_type = t.get("type").and_then(|v| v.as_str()).map(String::from);
        s.immutable = t.get("immutable").and_then(|v| v.as_bool());
        if let Some(m) = t.get("metadata") {
            for (field, out) in [
                ("labels", &mut s.labels),
                ("annotations", &mut s.annotations),
            ] {
                for (k, v) in m
                    .get(field)
                    .and_then(|v| v.as_object())
                    .into_iter()
                    .flatten()
                {
                    out.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
                }
            }
        }
    }
    for (k, v) in spec
        .get("data")
        .and_then(|v| v.as_object())
        .into_iter()
        .flatten()
    {
        let b = STANDARD
            .decode(v.as_str().unwrap_or_default())
            .map_err(|_| user(format!("spec.data.{k} is not valid base64")))?;
        s.data.insert(k.clone(), Zeroizing::new(b));
    }
    for (k, v) in spec
        .get("stringData")
        .and_then(|v| v.as_object())
        .into_iter()
        .flatten()
    {
        let text = match v {
            serde_json::Value::String(t) => t.clone(),
            other => other.to_string(),
        };
        s.data.insert(k.clone(), Zeroizing::new(text.into_bytes()));
    }
    Ok(s)
}

/// Decrypts a SOPS file; SOPS AgeSecrets come out as Secret manifests (binding checked).
pub fn unseal(bytes: &[u8], ids: &[Identity], string_data: bool) -> Result<Zeroizing<String>> {
    let (format, _, file) = open(bytes, ids)?;
    let mut out = Vec::new();
    for (i, doc) in file.plaintext().iter().enumerate() {
        if kind(doc) == Some("AgeSecret") {
            let n = file.plaintext().len();
            let bound = crate::exit::in_doc(check_binding(doc), i, n)?;
            if !bound {
                eprintln!(
                    "warning: an AgeSecret without spec.binding (the controller refuses it unless --allow-unbound-sops)"
                );
            }
            let secret = crate::exit::in_doc(agesecret_to_secret(doc), i, n)?;
            out.push(Document::new(to_core(&secret_to_node(
                &secret,
                string_data,
            ))));
        } else {
            out.push(doc.clone());
        }
    }
    let text = match (format, out.len()) {
        (Format::Json, 1) => document::emit(&out, CoreFormat::Json, &EmitOptions::default())?,
        (Format::Json, _) => out
            .iter()
            .map(|d| {
                document::emit(
                    std::slice::from_ref(d),
                    CoreFormat::Json,
                    &EmitOptions::default(),
                )
            })
            .collect::<kage_core::Result<Vec<_>>>()?
            .join(""),
        (Format::Yaml, _) => document::emit(&out, CoreFormat::Yaml, &EmitOptions::default())?,
    };
    Ok(Zeroizing::new(text))
}

/// Sets (`Some`) or removes (`None`) a value, keeping every other ciphertext. In a Secret or a
/// SOPS AgeSecret `key` is a data key; in other documents a dotted path.
pub fn set(bytes: &[u8], key: &str, value: Option<&[u8]>, ids: &[Identity]) -> Result<String> {
    let (format, _, file) = open(bytes, ids)?;
    let mut plain: Zeroizing<Vec<Document>> = Zeroizing::new(file.plaintext().to_vec());
    if plain.len() != 1 {
        return Err(user(format!(
            "the file holds {} documents; set and unset change files with one",
            plain.len()
        ))
        .into());
    }
    let doc = &mut plain[0];
    let secret_like = match kind(doc) {
        Some("Secret") => Some(None),
        Some("AgeSecret") => Some(Some("spec")),
        _ => None,
    };
    match secret_like {
        Some(parent) => {
            manifest::check_key_name(key)?;
            let holder = match parent {
                Some(p) => doc.root.get_mut(p).ok_or_else(|| user("spec is missing"))?,
                None => &mut doc.root,
            };
            let mut found = false;
            for field in ["data", "stringData"] {
                if let Some(m) = holder.get_mut(field) {
                    found |= m.remove(key).is_some();
                    if m.entries().next().is_none() {
                        holder.remove(field);
                    }
                }
            }
            match value {
                Some(v) => match std::str::from_utf8(v) {
                    Ok(t) if t.chars().all(|c| !c.is_control() || c == '\n') => {
                        insert_into(holder, "stringData", key, Node::string(t))
                    }
                    _ => insert_into(holder, "data", key, Node::string(STANDARD.encode(v))),
                },
                None if !found => {
                    return Err(user(format!("no key {key}")).into());
                }
                None => {}
            }
            if parent.is_some() {
                doc.root.sort_keys();
            }
        }
        None => {
            let path: Vec<&str> = key.split('.').collect();
            match value {
                Some(v) => {
                    let text = std::str::from_utf8(v).map_err(|_| {
                        user("a value in a SOPS document must be UTF-8 text")
                            .hint("base64-encode binary values")
                    })?;
                    set_path(&mut doc.root, &path, Node::string(text))?;
                }
                None => remove_path(&mut doc.root, &path)
                    .ok_or_else(|| user(format!("no key {key}")))?,
            }
        }
    }
    let enc = file.reseal(&plain)?;
    emit_sops(&enc, format)
}

fn insert_into(holder: &mut Node, field: &str, key: &str, value: Node) {
    if holder.get(field).is_none() {
        holder.insert(field, Node::map());
    }
    if let Some(m) = holder.get_mut(field) {
        m.insert(key, value);
    }
}

fn set_path(node: &mut Node, path: &[&str], value: Node) -> Result<()> {
    match path {
        [] => Err(user("empty key").into()),
        [last] => {
            if !matches!(node, Node::Map(_)) {
                return Err(user(format!("{last}: the parent is not a mapping")).into());
            }
            node.insert(*last, value);
            Ok(())
        }
        [first, rest @ ..] => {
            if !matches!(node, Node::Map(_)) {
                return Err(user(format!("{first}: not a mapping")).into());
            }
            if node.get(first).is_none() {
                node.insert(*first, Node::map());
            }
            set_path(node.get_mut(first).expect("inserted"), rest, value)
        }
    }
}

fn remove_path(node: &mut Node, path: &[&str]) -> Option<()> {
    match path {
        [] => None,
        [last] => node.remove(last).map(|_| ()),
        [first, rest @ ..] => remove_path(node.get_mut(first)?, rest),
    }
}

/// `kage reencrypt` of a SOPS file: `None` when already current (and no rotation asked).
pub fn reencrypt(
    bytes: &[u8],
    ids: &[Identity],
    target: &Target,
    rotate: bool,
) -> Result<Option<String>> {
    let (format, _, mut file) = open(bytes, ids)?;
    // a SOPS AgeSecret edited by hand may have lost its sorted key order (which the MAC needs to
    // survive the API server): sort and encrypt again under the same data key first
    let mut sorted = Zeroizing::new(file.plaintext().to_vec());
    let mut resorted = false;
    for doc in sorted.iter_mut().filter(|d| kind(d) == Some("AgeSecret")) {
        let before = Zeroizing::new(doc.clone());
        doc.root.sort_keys();
        resorted |= *doc != *before;
    }
    let mut resealed = None;
    if resorted {
        let docs = file.reseal(&sorted)?;
        file = SopsFile::open(&docs, ids)?;
        resealed = Some(docs);
    }
    let groups: Vec<Vec<Recipient>> = vec![target.recipients.clone()];
    let out = if rotate {
        Some(file.rotate(Some(&groups))?)
    } else {
        match file.update_keys(&groups, 0)? {
            Some(docs) => Some(docs),
            None => resealed,
        }
    };
    out.map(|docs| emit_sops(&docs, format)).transpose()
}

/// The plaintext of a SOPS file for editing, and its format.
pub fn edit_plain(bytes: &[u8], ids: &[Identity]) -> Result<(Zeroizing<String>, Format)> {
    let (format, _, file) = open(bytes, ids)?;
    let text = document::emit(
        file.plaintext(),
        core_format(format),
        &EmitOptions::default(),
    )?;
    Ok((Zeroizing::new(text), format))
}

/// The SOPS file after editing: unchanged values keep their ciphertext; an AgeSecret's binding
/// follows its (possibly edited) metadata and its keys stay sorted.
pub fn edit_apply(old: &[u8], edited: &str, ids: &[Identity]) -> Result<String> {
    let (format, _, file) = open(old, ids)?;
    let mut docs = document::parse(edited.as_bytes(), core_format(format))?;
    if docs.iter().any(sops::is_sops_document) {
        return Err(user("the edited file must not contain a `sops` block").into());
    }
    for doc in docs.iter_mut() {
        if kind(doc) == Some("AgeSecret") {
            let scope: Scope = doc
                .root
                .get_path(&["spec", "scope"])
                .and_then(Node::as_str)
                .unwrap_or("strict")
                .parse()
                .map_err(|_| user("spec.scope is not strict, namespace or cluster"))?;
            let ns = doc
                .root
                .get_path(&["metadata", "namespace"])
                .and_then(Node::as_str)
                .map(String::from);
            let name = doc
                .root
                .get_path(&["metadata", "name"])
                .and_then(Node::as_str)
                .map(String::from);
            crate::agesecret::binding_for(scope, ns.as_deref(), name.as_deref(), "")?;
            let text = sealed::binding_text(
                scope,
                ns.as_deref().unwrap_or(""),
                name.as_deref().unwrap_or(""),
            );
            if let Some(spec) = doc.root.get_mut("spec") {
                spec.insert("binding", Node::string(text));
            }
            doc.root.sort_keys();
        }
    }
    let enc = file
        .reseal(&docs)
        .context("the edited document cannot be encrypted")?;
    emit_sops(&enc, format)
}

/// `kage validate` of a SOPS file.
pub fn validate(bytes: &[u8], ctx: &CheckContext<'_>, f: &mut Findings) {
    if let Err(err) = validate_inner(bytes, ctx, f) {
        f.fail_err("", &err);
    }
}

fn validate_inner(bytes: &[u8], ctx: &CheckContext<'_>, f: &mut Findings) -> Result<()> {
    let (_, docs) = parse(bytes)?;
    let groups = sops::recipients_of(&docs)?;
    if ctx.env.is_some() {
        let mut has_current = false;
        for r in groups.iter().flatten() {
            let rec: Recipient = r.parse()?;
            let kid = rec.kid();
            if !ctx.known.contains(&kid) {
                f.fail(
                    format!(
                        "sops: recipient {r} (key id {kid}) is unknown to environment {}",
                        ctx.env.map(|e| e.name.as_str()).unwrap_or("")
                    ),
                    Exit::NoMatchingKey,
                );
            }
            has_current |= ctx.current.as_ref() == Some(&kid);
        }
        if !has_current {
            f.warnings.push(
                "not encrypted to the environment's current key (run `kage reencrypt`)".into(),
            );
        }
    }
    for (i, doc) in docs.iter().enumerate() {
        let at = |p: &str| {
            if docs.len() > 1 {
                format!("document {}: {p}", i + 1)
            } else {
                p.to_string()
            }
        };
        let (holder, fields): (Option<&Node>, &[&str]) = match kind(doc) {
            Some("Secret") => (Some(&doc.root), &["data", "stringData"]),
            Some("AgeSecret") => {
                if doc.root.get_path(&["spec", "binding"]).is_none() {
                    f.fail(
                        at("spec.binding is missing (an unbound SOPS AgeSecret)"),
                        Exit::Error,
                    );
                }
                (doc.root.get("spec"), &["data", "stringData", "binding"])
            }
            _ => (None, &[]),
        };
        if let Some(h) = holder {
            for field in fields {
                if let Some(n) = h.get(field) {
                    for path in clear_leaves(n, field) {
                        f.fail(at(&format!("{path} is in clear")), Exit::Error);
                    }
                }
            }
        }
    }
    if !ctx.ids.is_empty() {
        let file = SopsFile::open(&docs, ctx.ids)?;
        for (i, doc) in file.plaintext().iter().enumerate() {
            if kind(doc) == Some("AgeSecret") {
                crate::exit::in_doc(check_binding(doc).map(|_| ()), i, docs.len())?;
            }
        }
    }
    Ok(())
}

/// Leaves under `node` that are not `ENC[…]` values.
fn clear_leaves(node: &Node, path: &str) -> Vec<String> {
    match node {
        Node::Map(_) => node
            .entries()
            .flat_map(|(k, v)| clear_leaves(v, &format!("{path}.{k}")))
            .collect(),
        Node::Seq(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, it)| match it {
                kage_core::document::SeqItem::Value(v) => {
                    Some(clear_leaves(v, &format!("{path}[{i}]")))
                }
                _ => None,
            })
            .flatten()
            .collect(),
        Node::Scalar(_) => match node.as_str() {
            Some(s) if s.starts_with("ENC[AES256_GCM,") => vec![],
            _ => vec![path.to_string()],
        },
    }
}
