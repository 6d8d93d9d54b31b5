//! The SOPS engine: read and write sops 3.x YAML and JSON files with age master keys.
//!
//! The format is described field by field in `docs/format.md` (and sops-format.md); the real
//! sops decrypts what this module writes and this module decrypts what sops writes.

mod cipher;
mod metadata;
mod shamir;
mod walk;

use std::io::{Read, Write};

use regex::Regex;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub use metadata::{AgeKey, KeyGroup, Metadata, WRITER_VERSION};

use crate::document::{Document, EmitOptions, Format, MapItem, Node};
use crate::error::{Error, Result};
use crate::keys::{Identity, Kid, Recipient};
use cipher::DataKey;

/// Which leaves of a document are encrypted (exactly one rule per file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Encrypt leaves unless a key on their path ends with the suffix (sops default `_unencrypted`).
    UnencryptedSuffix(String),
    /// Encrypt leaves when a key on their path ends with the suffix.
    EncryptedSuffix(String),
    /// Encrypt leaves unless a key on their path matches the regex.
    UnencryptedRegex(String),
    /// Encrypt leaves when a key on their path matches the regex.
    EncryptedRegex(String),
    /// Encrypt leaves unless a comment above them (or their ancestors) matches the regex.
    UnencryptedCommentRegex(String),
    /// Encrypt leaves when a comment above them (or their ancestors) matches the regex.
    EncryptedCommentRegex(String),
}

impl Default for Selection {
    fn default() -> Self {
        Selection::UnencryptedSuffix("_unencrypted".into())
    }
}

impl Selection {
    /// The rule kage uses for a Kubernetes Secret: `encrypted_regex: ^(data|stringData)$`.
    pub fn kubernetes_secret() -> Selection {
        Selection::EncryptedRegex("^(data|stringData)$".into())
    }

    pub(crate) fn from_key(key: &str, value: String) -> Selection {
        match key {
            "encrypted_suffix" => Selection::EncryptedSuffix(value),
            "unencrypted_regex" => Selection::UnencryptedRegex(value),
            "encrypted_regex" => Selection::EncryptedRegex(value),
            "unencrypted_comment_regex" => Selection::UnencryptedCommentRegex(value),
            "encrypted_comment_regex" => Selection::EncryptedCommentRegex(value),
            _ => Selection::UnencryptedSuffix(value),
        }
    }

    /// The metadata key and value of this rule.
    pub fn key_value(&self) -> (&'static str, &str) {
        match self {
            Selection::UnencryptedSuffix(v) => ("unencrypted_suffix", v),
            Selection::EncryptedSuffix(v) => ("encrypted_suffix", v),
            Selection::UnencryptedRegex(v) => ("unencrypted_regex", v),
            Selection::EncryptedRegex(v) => ("encrypted_regex", v),
            Selection::UnencryptedCommentRegex(v) => ("unencrypted_comment_regex", v),
            Selection::EncryptedCommentRegex(v) => ("encrypted_comment_regex", v),
        }
    }

    pub(crate) fn compile(&self) -> Result<CompiledSelection> {
        let regex = |r: &str| {
            Regex::new(r).map_err(|e| {
                Error::sops(format!(
                    "{} {r:?} is not a valid regex: {e}",
                    self.key_value().0
                ))
            })
        };
        Ok(match self {
            Selection::UnencryptedSuffix(s) => CompiledSelection::Suffix(s.clone(), false),
            Selection::EncryptedSuffix(s) => CompiledSelection::Suffix(s.clone(), true),
            Selection::UnencryptedRegex(r) => CompiledSelection::Key(regex(r)?, false),
            Selection::EncryptedRegex(r) => CompiledSelection::Key(regex(r)?, true),
            Selection::UnencryptedCommentRegex(r) => CompiledSelection::Comment(regex(r)?, false),
            Selection::EncryptedCommentRegex(r) => CompiledSelection::Comment(regex(r)?, true),
        })
    }
}

/// A selection rule ready to test leaves. The bool: does a match mean "encrypt"?
pub(crate) enum CompiledSelection {
    Suffix(String, bool),
    Key(Regex, bool),
    Comment(Regex, bool),
}

impl CompiledSelection {
    /// Is the leaf at `path`, under the stacked comments, encrypted?
    pub(crate) fn encrypts<'a>(
        &self,
        path: &[String],
        comments: impl Iterator<Item = &'a str>,
    ) -> bool {
        match self {
            CompiledSelection::Suffix(s, enc) => {
                path.iter().any(|p| p.ends_with(s.as_str())) == *enc
            }
            CompiledSelection::Key(r, enc) => path.iter().any(|p| r.is_match(p)) == *enc,
            CompiledSelection::Comment(r, enc) => {
                let mut comments = comments;
                comments.any(|c| r.is_match(c)) == *enc
            }
        }
    }
}

/// How to encrypt a new file.
#[derive(Debug, Clone)]
pub struct EncryptOptions {
    /// Key groups of age recipients; more than one group means Shamir sharing.
    pub key_groups: Vec<Vec<Recipient>>,
    /// Groups needed to decrypt (0 = all groups); ignored with one group.
    pub shamir_threshold: usize,
    /// Which leaves to encrypt.
    pub selection: Selection,
    /// MAC only the encrypted values (lets tools edit the clear ones).
    pub mac_only_encrypted: bool,
}

impl EncryptOptions {
    /// One group of recipients, the sops default selection.
    pub fn new(recipients: Vec<Recipient>) -> EncryptOptions {
        EncryptOptions {
            key_groups: vec![recipients],
            shamir_threshold: 0,
            selection: Selection::default(),
            mac_only_encrypted: false,
        }
    }
}

/// Whether a document carries a top-level `sops` block.
pub fn is_sops_document(doc: &Document) -> bool {
    matches!(doc.root.get("sops"), Some(Node::Map(_)))
}

fn check_plain_roots(docs: &[Document]) -> Result<()> {
    if docs.is_empty() {
        return Err(Error::invalid("", "the input holds no document"));
    }
    for (i, doc) in docs.iter().enumerate() {
        if !matches!(doc.root, Node::Map(_)) {
            return Err(Error::invalid(
                doc_label(i, docs.len()),
                "the top level must be a mapping",
            ));
        }
        if doc.root.get("sops").is_some() {
            return Err(Error::invalid(
                doc_label(i, docs.len()),
                "already has a top-level `sops` key (is it already encrypted?)",
            ));
        }
    }
    Ok(())
}

fn doc_label(i: usize, n: usize) -> String {
    if n > 1 {
        format!("document {}", i + 1)
    } else {
        String::new()
    }
}

fn now_lastmodified() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Encrypt plaintext documents into SOPS documents.
pub fn encrypt(docs: &[Document], opts: &EncryptOptions) -> Result<Vec<Document>> {
    check_plain_roots(docs)?;
    let key = DataKey::generate();
    let groups = wrap_data_key(&key, &opts.key_groups, opts.shamir_threshold)?;
    let metadata = Metadata {
        key_groups: groups,
        shamir_threshold: if opts.key_groups.len() > 1 {
            opts.shamir_threshold
        } else {
            0
        },
        lastmodified: String::new(),
        mac: String::new(),
        selection: opts.selection.clone(),
        mac_only_encrypted: opts.mac_only_encrypted,
        version: WRITER_VERSION.to_string(),
        extra: Vec::new(),
    };
    seal_with(&key, metadata, docs, None)
}

/// Encrypt `plain` under `key` and attach `metadata` (new lastmodified and MAC).
fn seal_with(
    key: &DataKey,
    mut metadata: Metadata,
    plain: &[Document],
    nonces: Option<&walk::NonceCache>,
) -> Result<Vec<Document>> {
    check_plain_roots(plain)?;
    let selection = metadata.selection.compile()?;
    let mut walker = walk::Walker::new(key, &selection, metadata.mac_only_encrypted, nonces);
    let mut out: Vec<Document> = plain
        .iter()
        .map(|d| walker.encrypt_document(d))
        .collect::<Result<_>>()?;
    let mac = walker.finish_mac();
    metadata.lastmodified = now_lastmodified();
    let aad = metadata::mac_aad(&metadata.lastmodified)?;
    metadata.mac = cipher::seal(key, mac.as_bytes(), aad.as_bytes(), "str", None);
    let block = metadata.to_node(false);
    for doc in out.iter_mut() {
        if let Node::Map(items) = &mut doc.root {
            items.push(MapItem::Entry("sops".into(), block.clone()));
        }
    }
    Ok(out)
}

/// A decrypted SOPS file: the plaintext, plus what is needed to write it back with minimal
/// changes (same data key, unchanged values byte-identical). The plaintext is wiped on drop.
pub struct SopsFile {
    metadata: Metadata,
    key: DataKey,
    nonces: walk::NonceCache,
    encrypted: Vec<Document>,
    plaintext: Vec<Document>,
}

impl Drop for SopsFile {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.plaintext.zeroize();
    }
}

impl SopsFile {
    /// Decrypt and verify (MAC) SOPS documents.
    pub fn open(docs: &[Document], identities: &[Identity]) -> Result<SopsFile> {
        let first = docs
            .first()
            .ok_or_else(|| Error::sops("the input holds no document"))?;
        let block = first.root.get("sops").ok_or_else(|| {
            Error::sops("not a SOPS file: no top-level `sops` metadata (sops metadata not found)")
        })?;
        let metadata = Metadata::from_node(block)?;
        let key = unwrap_data_key(&metadata, identities)?;
        let selection = metadata.selection.compile()?;
        let mut walker = walk::Walker::new(&key, &selection, metadata.mac_only_encrypted, None);
        walker.record_nonces();
        let mut plaintext = Vec::with_capacity(docs.len());
        for (i, doc) in docs.iter().enumerate() {
            let mut doc = doc.clone();
            doc.root.remove("sops");
            let plain = walker
                .decrypt_document(&doc)
                .map_err(|e| e.at_path(&doc_label(i, docs.len())))?;
            plaintext.push(plain);
        }
        let computed = walker.finish_mac();
        let stored = cipher::EncValue::parse(&metadata.mac)
            .map_err(|_| Error::sops("the stored MAC is not an ENC[…] value"))?;
        let aad = metadata::mac_aad(&metadata.lastmodified)?;
        let stored = cipher::open(&key, &stored, aad.as_bytes()).map_err(|_| Error::MacMismatch)?;
        if !bool::from(stored.as_slice().ct_eq(computed.as_bytes())) {
            return Err(Error::MacMismatch);
        }
        let nonces = walker.take_nonces();
        Ok(SopsFile {
            metadata,
            key,
            nonces,
            encrypted: docs.to_vec(),
            plaintext,
        })
    }

    /// The decrypted documents (`sops` block removed).
    pub fn plaintext(&self) -> &[Document] {
        &self.plaintext
    }

    /// The metadata as read.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Encrypt new plaintext under the same data key and keys: values whose plaintext and path
    /// did not change keep their ciphertext byte-for-byte; new `lastmodified` and MAC.
    pub fn reseal(&self, plaintext: &[Document]) -> Result<Vec<Document>> {
        seal_with(
            &self.key,
            self.metadata.clone(),
            plaintext,
            Some(&self.nonces),
        )
    }

    /// Re-wrap the same data key for new key groups; values, MAC and `lastmodified` are kept.
    /// Returns `None` when the recipients are already these.
    pub fn update_keys(
        &self,
        key_groups: &[Vec<Recipient>],
        shamir_threshold: usize,
    ) -> Result<Option<Vec<Document>>> {
        let current: Vec<Vec<&str>> = self
            .metadata
            .key_groups
            .iter()
            .map(|g| g.age.iter().map(|k| k.recipient.as_str()).collect())
            .collect();
        let wanted: Vec<Vec<&str>> = key_groups
            .iter()
            .map(|g| g.iter().map(|r| r.as_str()).collect())
            .collect();
        let has_others = self
            .metadata
            .key_groups
            .iter()
            .any(|g| !g.others.is_empty());
        if current == wanted && !has_others {
            return Ok(None);
        }
        let threshold = if key_groups.len() > 1 {
            let t = if shamir_threshold > 0 {
                shamir_threshold
            } else {
                self.metadata.shamir_threshold
            };
            t.min(key_groups.len())
        } else {
            0
        };
        let mut metadata = self.metadata.clone();
        metadata.key_groups = wrap_data_key(&self.key, key_groups, threshold)?;
        metadata.shamir_threshold = threshold;
        let block = metadata.to_node(false);
        let mut out = self.encrypted.clone();
        for doc in out.iter_mut() {
            doc.root.insert("sops", block.clone());
        }
        Ok(Some(out))
    }

    /// A new data key: every value re-encrypted, optionally to new key groups.
    pub fn rotate(&self, key_groups: Option<&[Vec<Recipient>]>) -> Result<Vec<Document>> {
        let key = DataKey::generate();
        let mut metadata = self.metadata.clone();
        let groups: Vec<Vec<Recipient>> = match key_groups {
            Some(g) => g.to_vec(),
            None => self
                .metadata
                .key_groups
                .iter()
                .map(|g| {
                    g.age
                        .iter()
                        .map(|k| k.recipient.parse())
                        .collect::<Result<Vec<_>>>()
                })
                .collect::<Result<_>>()?,
        };
        metadata.key_groups = wrap_data_key(&key, &groups, metadata.shamir_threshold)?;
        seal_with(&key, metadata, &self.plaintext, None)
    }
}

/// Decrypt SOPS documents (MAC verified); the plaintext is wiped when dropped.
pub fn decrypt(docs: &[Document], identities: &[Identity]) -> Result<Zeroizing<Vec<Document>>> {
    let mut file = SopsFile::open(docs, identities)?;
    Ok(Zeroizing::new(std::mem::take(&mut file.plaintext)))
}

/// The age recipients of each key group, read without decrypting.
pub fn recipients_of(docs: &[Document]) -> Result<Vec<Vec<String>>> {
    let block = docs
        .first()
        .and_then(|d| d.root.get("sops"))
        .ok_or_else(|| Error::sops("not a SOPS file: no top-level `sops` metadata"))?;
    let md = Metadata::from_node(block)?;
    Ok(md
        .key_groups
        .iter()
        .map(|g| g.age.iter().map(|k| k.recipient.clone()).collect())
        .collect())
}

/// Parse, decrypt and emit in one go (plaintext in a zeroizing buffer).
pub fn decrypt_bytes(
    bytes: &[u8],
    format: Format,
    identities: &[Identity],
) -> Result<Zeroizing<Vec<u8>>> {
    let docs = crate::document::parse(bytes, format)?;
    let plain = decrypt(&docs, identities)?;
    let text = crate::document::emit(&plain, format, &EmitOptions::default())?;
    Ok(Zeroizing::new(text.into_bytes()))
}

/// Parse, encrypt and emit in one go, in the layout sops writes.
pub fn encrypt_bytes(bytes: &[u8], format: Format, opts: &EncryptOptions) -> Result<Vec<u8>> {
    let docs = crate::document::parse(bytes, format)?;
    let enc = encrypt(&docs, opts)?;
    Ok(crate::document::emit(&enc, format, &EmitOptions::sops())?.into_bytes())
}

fn wrap_data_key(
    key: &DataKey,
    groups: &[Vec<Recipient>],
    threshold: usize,
) -> Result<Vec<KeyGroup>> {
    if groups.is_empty() || groups.iter().any(|g| g.is_empty()) {
        return Err(Error::Encrypt {
            what: "no recipients (every key group needs at least one age recipient)".into(),
        });
    }
    let parts: Vec<Zeroizing<Vec<u8>>> = if groups.len() == 1 {
        vec![Zeroizing::new(key.0.to_vec())]
    } else {
        let t = if threshold == 0 {
            groups.len()
        } else {
            threshold
        };
        shamir::split(&key.0[..], groups.len(), t)?
    };
    groups
        .iter()
        .zip(parts.iter())
        .map(|(recipients, part)| {
            let age = recipients
                .iter()
                .map(|r| {
                    Ok(AgeKey {
                        recipient: r.to_string(),
                        enc: age_wrap(r, part)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(KeyGroup {
                age,
                others: Vec::new(),
            })
        })
        .collect()
}

fn age_wrap(recipient: &Recipient, secret: &[u8]) -> Result<String> {
    use age::armor::{ArmoredWriter, Format as ArmorFormat};
    let err = |e: &dyn std::fmt::Display| Error::Encrypt {
        what: e.to_string(),
    };
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(recipient.as_age() as &dyn age::Recipient))
            .map_err(|e| err(&e))?;
    let mut out = Vec::new();
    let armored =
        ArmoredWriter::wrap_output(&mut out, ArmorFormat::AsciiArmor).map_err(|e| err(&e))?;
    let mut w = encryptor.wrap_output(armored).map_err(|e| err(&e))?;
    w.write_all(secret).map_err(|e| err(&e))?;
    w.finish()
        .and_then(|armor| armor.finish())
        .map_err(|e| err(&e))?;
    String::from_utf8(out).map_err(|e| err(&e))
}

fn age_unwrap(enc: &str, identities: &[&Identity]) -> Option<Zeroizing<Vec<u8>>> {
    let reader = age::armor::ArmoredReader::new(enc.as_bytes());
    let decryptor = age::Decryptor::new(reader).ok()?;
    let mut r = decryptor
        .decrypt(identities.iter().map(|i| i.as_age() as &dyn age::Identity))
        .ok()?;
    let mut out = Zeroizing::new(Vec::new());
    r.read_to_end(&mut out).ok()?;
    Some(out)
}

fn unwrap_data_key(md: &Metadata, identities: &[Identity]) -> Result<DataKey> {
    let mut parts: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    for group in &md.key_groups {
        // Try the identity whose recipient is named first: one X25519 operation per file.
        let part = group.age.iter().find_map(|k| {
            let named: Vec<&Identity> = identities
                .iter()
                .filter(|i| i.recipient().as_str() == k.recipient)
                .collect();
            if named.is_empty() {
                None
            } else {
                age_unwrap(&k.enc, &named)
            }
        });
        let part = part.or_else(|| {
            let all: Vec<&Identity> = identities.iter().collect();
            group.age.iter().find_map(|k| age_unwrap(&k.enc, &all))
        });
        if let Some(p) = part {
            parts.push(p);
        }
    }
    let unknown = || Error::UnknownKey {
        kids: md
            .key_groups
            .iter()
            .flat_map(|g| g.age.iter().map(|k| Kid::of_recipient_str(&k.recipient)))
            .collect(),
    };
    let key_bytes = if md.key_groups.len() <= 1 {
        parts.pop().ok_or_else(unknown)?
    } else {
        let needed = if md.shamir_threshold == 0 {
            md.key_groups.len()
        } else {
            md.shamir_threshold
        };
        if parts.len() < needed {
            return Err(if parts.is_empty() {
                unknown()
            } else {
                Error::sops(format!(
                    "only {} of the {needed} key groups needed could be decrypted with the identities given",
                    parts.len()
                ))
            });
        }
        shamir::combine(&parts)?
    };
    if key_bytes.len() != 32 {
        return Err(Error::corrupt("the data key is not 32 bytes"));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&key_bytes);
    Ok(DataKey(key))
}
