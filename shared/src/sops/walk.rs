//! The tree walk shared by encryption, decryption and the MAC (depth-first, pre-order; the path
//! is the list of mapping keys, sequence indices excluded; AAD = `join(path, ":") + ":"`).

use std::collections::HashMap;

use sha2::{Digest, Sha256, Sha512};
use zeroize::Zeroizing;

use super::CompiledSelection;
use super::cipher::{self, DataKey, EncValue, looks_encrypted};
use crate::document::{Document, MapItem, Node, Scalar, SeqItem};
use crate::error::{Error, Result};

/// (AAD, type, plaintext) fingerprint -> nonce, to re-seal unchanged values identically.
pub(crate) type NonceCache = HashMap<[u8; 32], Vec<u8>>;

/// SHA-256("sops"), fed first when only encrypted values are MACed.
const MAC_ONLY_ENCRYPTED_PREFIX: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

pub(crate) struct Walker<'a> {
    key: &'a DataKey,
    selection: &'a CompiledSelection,
    mac_only_encrypted: bool,
    mac: Sha512,
    path: Vec<String>,
    /// One run of comments per level: those directly above the current entry.
    comments: Vec<Vec<String>>,
    reuse: Option<&'a NonceCache>,
    record: Option<NonceCache>,
}

fn fingerprint(aad: &str, typ: &str, plaintext: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((aad.len() as u64).to_be_bytes());
    h.update(aad.as_bytes());
    h.update((typ.len() as u64).to_be_bytes());
    h.update(typ.as_bytes());
    h.update(plaintext);
    h.finalize().into()
}

impl<'a> Walker<'a> {
    pub(crate) fn new(
        key: &'a DataKey,
        selection: &'a CompiledSelection,
        mac_only_encrypted: bool,
        reuse: Option<&'a NonceCache>,
    ) -> Walker<'a> {
        let mut mac = Sha512::new();
        if mac_only_encrypted {
            mac.update(MAC_ONLY_ENCRYPTED_PREFIX);
        }
        Walker {
            key,
            selection,
            mac_only_encrypted,
            mac,
            path: Vec::new(),
            comments: vec![Vec::new()],
            reuse,
            record: None,
        }
    }

    pub(crate) fn record_nonces(&mut self) {
        self.record = Some(NonceCache::new());
    }

    pub(crate) fn take_nonces(&mut self) -> NonceCache {
        self.record.take().unwrap_or_default()
    }

    /// Uppercase hex of the SHA-512 over everything fed so far.
    pub(crate) fn finish_mac(&mut self) -> String {
        let digest = std::mem::take(&mut self.mac).finalize();
        crate::keys::hex(&digest).to_ascii_uppercase()
    }

    fn aad(&self) -> String {
        let mut s = self.path.join(":");
        s.push(':');
        s
    }

    fn path_label(&self) -> String {
        self.path.join(".")
    }

    fn stacked_comments(&self) -> impl Iterator<Item = &str> {
        self.comments.iter().flatten().map(|s| s.as_str())
    }

    fn leaf_selected(&self) -> bool {
        self.selection.encrypts(&self.path, self.stacked_comments())
    }

    /// Should a comment (with text `text`) at this level be encrypted?
    fn comment_selected(&self, text: &str) -> bool {
        match self.selection {
            // The marker comment itself stays readable; only what it marks is encrypted.
            CompiledSelection::Comment(_, true) => {
                self.selection.encrypts(&self.path, self.stacked_comments())
            }
            CompiledSelection::Comment(_, false) => self.selection.encrypts(
                &self.path,
                self.stacked_comments().chain(std::iter::once(text)),
            ),
            _ => self.leaf_selected(),
        }
    }

    fn feed_mac(&mut self, scalar: &Scalar, selected: bool) {
        if self.mac_only_encrypted && !selected {
            return;
        }
        if let Some(bytes) = scalar.canonical() {
            self.mac.update(bytes.as_bytes());
        }
    }

    fn seal(&mut self, plaintext: &[u8], typ: &str) -> String {
        let aad = self.aad();
        let nonce = self
            .reuse
            .and_then(|cache| cache.get(&fingerprint(&aad, typ, plaintext)));
        cipher::seal(
            self.key,
            plaintext,
            aad.as_bytes(),
            typ,
            nonce.map(|n| &n[..]),
        )
    }

    fn open(&mut self, enc: &EncValue) -> Result<Zeroizing<Vec<u8>>> {
        let aad = self.aad();
        let plain = cipher::open(self.key, enc, aad.as_bytes()).map_err(|_| {
            Error::corrupt(format!(
                "{}: authentication failed (the value was modified or moved to another key)",
                self.path_label()
            ))
        })?;
        if let Some(cache) = &mut self.record {
            cache.insert(fingerprint(&aad, &enc.typ, &plain), enc.iv.clone());
        }
        Ok(plain)
    }

    // ------------------------------------------------------------------------- the walk

    pub(crate) fn encrypt_document(&mut self, doc: &Document) -> Result<Document> {
        self.walk_document(doc, Direction::Encrypt)
    }

    pub(crate) fn decrypt_document(&mut self, doc: &Document) -> Result<Document> {
        self.walk_document(doc, Direction::Decrypt)
    }

    fn walk_document(&mut self, doc: &Document, dir: Direction) -> Result<Document> {
        self.path.clear();
        self.comments = vec![Vec::new()];
        Ok(Document::new(self.walk(&doc.root, dir)?))
    }

    /// Descend into a child (a mapping value under `key`, or a sequence element), keeping the
    /// comment runs: the child gets a fresh run, and this level's run ends with the entry.
    fn child(&mut self, key: Option<&str>, node: &Node, dir: Direction) -> Result<Node> {
        let level = self.comments.len() - 1;
        if let Some(k) = key {
            self.path.push(k.to_string());
        }
        self.comments.push(Vec::new());
        let out = self.walk(node, dir);
        self.comments.pop();
        if key.is_some() {
            self.path.pop();
        }
        self.comments[level].clear();
        out
    }

    /// A comment line at this level: encrypted when selected (encrypt), opened when it is an
    /// encrypted comment (decrypt). Returns the text to write; its plaintext joins the run.
    fn comment(&mut self, text: &str, dir: Direction) -> (String, bool) {
        let level = self.comments.len() - 1;
        match dir {
            Direction::Encrypt => {
                let selected = !text.is_empty() && self.comment_selected(text);
                self.comments[level].push(text.to_string());
                if selected {
                    (self.seal(text.as_bytes(), "comment"), true)
                } else {
                    (text.to_string(), false)
                }
            }
            Direction::Decrypt => {
                let plain = self
                    .decrypt_comment(text)
                    .unwrap_or_else(|| text.to_string());
                self.comments[level].push(plain.clone());
                (plain, false)
            }
        }
    }

    fn walk(&mut self, node: &Node, dir: Direction) -> Result<Node> {
        match node {
            Node::Map(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(match item {
                        MapItem::Comment(text) => MapItem::Comment(self.comment(text, dir).0),
                        MapItem::Entry(k, v) => {
                            MapItem::Entry(k.clone(), self.child(Some(k), v, dir)?)
                        }
                    });
                }
                Ok(Node::Map(out))
            }
            Node::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(match item {
                        SeqItem::Comment(text) => match self.comment(text, dir) {
                            // sops writes an encrypted comment in a sequence as an element.
                            (enc, true) => SeqItem::Value(Node::string(enc)),
                            (plain, false) => SeqItem::Comment(plain),
                        },
                        SeqItem::Value(Node::Scalar(Scalar::Str(s)))
                            if dir == Direction::Decrypt
                                && s.ends_with(",type:comment]")
                                && looks_encrypted(s) =>
                        {
                            let plain = self.decrypt_comment(s).ok_or_else(|| {
                                Error::corrupt(format!(
                                    "{}: an encrypted comment in a sequence failed to decrypt",
                                    self.path_label()
                                ))
                            })?;
                            let level = self.comments.len() - 1;
                            self.comments[level].push(plain.clone());
                            SeqItem::Comment(plain)
                        }
                        SeqItem::Value(v) => SeqItem::Value(self.child(None, v, dir)?),
                    });
                }
                Ok(Node::Seq(out))
            }
            Node::Scalar(s) => match dir {
                Direction::Encrypt => self.encrypt_scalar(s),
                Direction::Decrypt => self.decrypt_scalar(s),
            },
        }
    }

    fn encrypt_scalar(&mut self, s: &Scalar) -> Result<Node> {
        let selected = self.leaf_selected();
        if matches!(s, Scalar::Null) {
            return Ok(Node::Scalar(s.clone()));
        }
        self.feed_mac(s, selected);
        let canonical = s.canonical().unwrap_or_default();
        if !selected || canonical.is_empty() {
            return Ok(Node::Scalar(s.clone()));
        }
        Ok(Node::string(self.seal(canonical.as_bytes(), s.sops_type())))
    }

    fn decrypt_scalar(&mut self, s: &Scalar) -> Result<Node> {
        if !self.leaf_selected() {
            if !matches!(s, Scalar::Null) {
                self.feed_mac(s, false);
            }
            return Ok(Node::Scalar(s.clone()));
        }
        match s {
            Scalar::Null => Ok(Node::Scalar(Scalar::Null)),
            Scalar::Str(text) if text.is_empty() => Ok(Node::Scalar(s.clone())),
            Scalar::Str(text) => {
                let enc = EncValue::parse(text).map_err(|e| match e {
                    Error::Corrupt { what } if looks_encrypted(text) => {
                        Error::corrupt(format!("{}: {what}", self.path_label()))
                    }
                    _ => Error::invalid(
                        self.path_label(),
                        "a clear string where an encrypted value belongs (was it edited by hand?)",
                    ),
                })?;
                let plain = self.open(&enc)?;
                let scalar = typed_scalar(&plain, &enc.typ)
                    .map_err(|m| Error::invalid(self.path_label(), m))?;
                self.feed_mac(&scalar, true);
                Ok(Node::Scalar(scalar))
            }
            other => Err(Error::invalid(
                self.path_label(),
                format!(
                    "a clear {} where an encrypted value belongs (was it edited by hand?)",
                    other.sops_type()
                ),
            )),
        }
    }

    /// Decrypt a comment if it is an encrypted one; sops keeps undecryptable comments as is.
    fn decrypt_comment(&mut self, text: &str) -> Option<String> {
        if !looks_encrypted(text) {
            return None;
        }
        let enc = EncValue::parse(text).ok()?;
        if enc.typ != "comment" {
            return None;
        }
        let aad = self.aad();
        let plain = cipher::open(self.key, &enc, aad.as_bytes()).ok()?;
        if let Some(cache) = &mut self.record {
            cache.insert(fingerprint(&aad, "comment", &plain), enc.iv.clone());
        }
        String::from_utf8(plain.to_vec()).ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Encrypt,
    Decrypt,
}

/// Convert decrypted bytes back to a typed scalar by the sops type tag.
fn typed_scalar(plain: &[u8], typ: &str) -> std::result::Result<Scalar, String> {
    let text =
        std::str::from_utf8(plain).map_err(|_| "decrypted value is not UTF-8 text".to_string())?;
    let bad = || format!("decrypted value does not parse as its type {typ}");
    Ok(match typ {
        "str" => Scalar::Str(text.to_string()),
        "int" => Scalar::Int(text.parse().map_err(|_| bad())?),
        "float" => Scalar::Float(match text {
            "+Inf" | "Inf" | "inf" | "+inf" => f64::INFINITY,
            "-Inf" | "-inf" => f64::NEG_INFINITY,
            "NaN" | "nan" => f64::NAN,
            t => t.parse().map_err(|_| bad())?,
        }),
        "bool" => Scalar::Bool(match text {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
            "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
            _ => return Err(bad()),
        }),
        "time" => match crate::document::resolve_timestamp(text) {
            Some(t) => Scalar::Time(t),
            None => return Err(bad()),
        },
        "bytes" => return Err("type bytes (legacy Python sops) is not supported".to_string()),
        other => return Err(format!("unknown value type {other:?}")),
    })
}
