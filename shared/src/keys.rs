//! age X25519 keys: identities, recipients, key ids and key rings.
//!
//! Identity files are read and written exactly as `age-keygen` does, so the `age` CLI and sops
//! read kage's files and kage reads theirs.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A key id: the first 8 bytes of SHA-256 of the recipient string, as 16 lowercase hex digits.
///
/// Public and stable: it names a cluster key everywhere keys are listed and is stored in clear
/// next to every sealed value.
///
/// ```
/// use kage_core::keys::{Identity, Kid};
/// let id = Identity::generate();
/// let kid: Kid = id.kid();
/// assert_eq!(kid.as_str().len(), 16);
/// assert_eq!(kid, id.recipient().kid());
/// ```
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Kid(String);

impl Kid {
    /// The key id of a recipient string (`age1…`).
    pub fn of_recipient_str(recipient: &str) -> Kid {
        let digest = Sha256::digest(recipient.as_bytes());
        Kid(hex(&digest[..8]))
    }

    /// The 16 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Kid {
    type Err = Error;
    fn from_str(s: &str) -> Result<Kid> {
        if s.len() == 16
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Kid(s.to_string()))
        } else {
            Err(Error::InvalidKey {
                message: format!("key id {s:?} is not 16 lowercase hex digits"),
            })
        }
    }
}

impl TryFrom<String> for Kid {
    type Error = Error;
    fn try_from(s: String) -> Result<Kid> {
        s.parse()
    }
}

impl From<Kid> for String {
    fn from(k: Kid) -> String {
        k.0
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// A public age X25519 recipient (`age1…`).
#[derive(Clone)]
pub struct Recipient {
    inner: age::x25519::Recipient,
    text: String,
}

impl Recipient {
    /// The key id of this recipient.
    pub fn kid(&self) -> Kid {
        Kid::of_recipient_str(&self.text)
    }

    /// The underlying age recipient.
    pub fn as_age(&self) -> &age::x25519::Recipient {
        &self.inner
    }

    /// The `age1…` string.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Recipient {
    type Err = Error;
    fn from_str(s: &str) -> Result<Recipient> {
        let s = s.trim();
        let inner = age::x25519::Recipient::from_str(s).map_err(|e| Error::InvalidKey {
            message: format!("{s:?} is not an age X25519 recipient (age1…): {e}"),
        })?;
        // Normalise (bech32 is case-insensitive; the canonical form is lowercase).
        let text = inner.to_string();
        Ok(Recipient { inner, text })
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({})", self.text)
    }
}

impl PartialEq for Recipient {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl Eq for Recipient {}
impl std::hash::Hash for Recipient {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state)
    }
}

/// A private age X25519 identity.
///
/// No `Debug` or `Display`: the key is only reachable through [`Identity::to_secret_string`].
/// The underlying scalar is zeroized on drop by age.
#[derive(Clone)]
pub struct Identity {
    inner: age::x25519::Identity,
    recipient: Recipient,
}

impl Identity {
    /// A fresh random identity.
    pub fn generate() -> Identity {
        Identity::from_age(age::x25519::Identity::generate())
    }

    fn from_age(inner: age::x25519::Identity) -> Identity {
        let public = inner.to_public();
        let text = public.to_string();
        Identity {
            inner,
            recipient: Recipient {
                inner: public,
                text,
            },
        }
    }

    /// Parse one `AGE-SECRET-KEY-1…` string.
    pub fn parse(text: &str) -> Result<Identity> {
        let text = text.trim();
        age::x25519::Identity::from_str(text)
            .map(Identity::from_age)
            .map_err(|_| Error::InvalidKey {
                message: "not an age X25519 identity (expected AGE-SECRET-KEY-1…)".into(),
            })
    }

    /// The `AGE-SECRET-KEY-1…` string.
    pub fn to_secret_string(&self) -> SecretString {
        self.inner.to_string()
    }

    /// The public recipient.
    pub fn recipient(&self) -> Recipient {
        self.recipient.clone()
    }

    /// The key id of the public recipient.
    pub fn kid(&self) -> Kid {
        self.recipient.kid()
    }

    /// The underlying age identity.
    pub fn as_age(&self) -> &age::x25519::Identity {
        &self.inner
    }
}

/// Parse an identity file as `age-keygen` writes it: `#` comment lines, blank lines, and one
/// `AGE-SECRET-KEY-1…` per line; several keys per file are allowed.
///
/// ```
/// use kage_core::keys::{format_identity_file, parse_identity_file, Identity};
/// let id = Identity::generate();
/// let file = format_identity_file(&id, jiff::Timestamp::now());
/// let back = parse_identity_file(&file).unwrap();
/// assert_eq!(back[0].recipient(), id.recipient());
/// ```
pub fn parse_identity_file(text: &str) -> Result<Vec<Identity>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let id = Identity::parse(line).map_err(|_| Error::InvalidKey {
            message: format!(
                "line {}: not an age X25519 identity (expected AGE-SECRET-KEY-1…)",
                n + 1
            ),
        })?;
        out.push(id);
    }
    if out.is_empty() {
        return Err(Error::InvalidKey {
            message: "no identity found (expected a line AGE-SECRET-KEY-1…)".into(),
        });
    }
    Ok(out)
}

/// Render an identity file byte-for-byte as `age-keygen` does.
pub fn format_identity_file(identity: &Identity, created: jiff::Timestamp) -> Zeroizing<String> {
    let created = jiff::Timestamp::from_second(created.as_second()).unwrap_or(created);
    let secret = identity.to_secret_string();
    Zeroizing::new(format!(
        "# created: {}\n# public key: {}\n{}\n",
        created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        identity.recipient(),
        secret.expose_secret()
    ))
}

/// Parse a recipients file: one `age1…` per line, `#` comments and blank lines ignored.
pub fn parse_recipients(text: &str) -> Result<Vec<Recipient>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let r = line.parse::<Recipient>().map_err(|_| Error::InvalidKey {
            message: format!(
                "line {}: not an age X25519 recipient (expected age1…)",
                n + 1
            ),
        })?;
        out.push(r);
    }
    Ok(out)
}

/// Identities indexed by key id, so a value's kids select the identity directly.
#[derive(Clone, Default)]
pub struct KeyRing {
    identities: Vec<Identity>,
    by_kid: BTreeMap<Kid, usize>,
}

impl KeyRing {
    /// An empty ring.
    pub fn new() -> KeyRing {
        KeyRing::default()
    }

    /// A ring holding `identities` (later duplicates are ignored).
    pub fn from_identities(identities: impl IntoIterator<Item = Identity>) -> KeyRing {
        let mut ring = KeyRing::new();
        for id in identities {
            ring.insert(id);
        }
        ring
    }

    /// Add an identity; a second identity with the same kid is ignored.
    pub fn insert(&mut self, identity: Identity) {
        let kid = identity.kid();
        if !self.by_kid.contains_key(&kid) {
            self.by_kid.insert(kid, self.identities.len());
            self.identities.push(identity);
        }
    }

    /// The identity with this key id.
    pub fn get(&self, kid: &Kid) -> Option<&Identity> {
        self.by_kid.get(kid).map(|&i| &self.identities[i])
    }

    /// Whether the ring holds this key id.
    pub fn contains(&self, kid: &Kid) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// All key ids, sorted.
    pub fn kids(&self) -> Vec<Kid> {
        self.by_kid.keys().cloned().collect()
    }

    /// Number of identities.
    pub fn len(&self) -> usize {
        self.identities.len()
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// The identities in insertion order.
    pub fn identities(&self) -> impl Iterator<Item = &Identity> {
        self.identities.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_is_sha256_prefix_of_recipient_string() {
        // sha256("age1y4tswgqcps7tw9ajujjlpzj5vjg6ck22hstcurm085rmswdqryhsrufuds")[..8]
        let r: Recipient = "age1y4tswgqcps7tw9ajujjlpzj5vjg6ck22hstcurm085rmswdqryhsrufuds"
            .parse()
            .unwrap();
        let expected = hex(&Sha256::digest(r.as_str().as_bytes())[..8]);
        assert_eq!(r.kid().as_str(), expected);
        assert_eq!(r.kid().as_str().len(), 16);
    }

    #[test]
    fn identity_file_matches_age_keygen_layout() {
        let id = Identity::generate();
        let ts: jiff::Timestamp = "2026-11-28T09:28:45.123Z".parse().unwrap();
        let text = format_identity_file(&id, ts);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "# created: 2026-11-28T09:28:45Z");
        assert_eq!(lines[1], format!("# public key: {}", id.recipient()));
        assert!(lines[2].starts_with("AGE-SECRET-KEY-1"));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn identity_file_errors_name_the_line_and_not_the_key() {
        let text = "# comment\n\nAGE-SECRET-KEY-1NOTAKEY\n";
        let err = parse_identity_file(text).err().unwrap().to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(!err.contains("NOTAKEY"), "{err}");
        assert!(parse_identity_file("# only comments\n").is_err());
    }

    #[test]
    fn ring_selects_by_kid_and_ignores_duplicates() {
        let a = Identity::generate();
        let b = Identity::generate();
        let ring = KeyRing::from_identities([a.clone(), b.clone(), a.clone()]);
        assert_eq!(ring.len(), 2);
        assert_eq!(ring.get(&b.kid()).unwrap().recipient(), b.recipient());
        assert!(!ring.contains(&Identity::generate().kid()));
    }

    #[test]
    fn recipients_file_skips_comments() {
        let a = Identity::generate().recipient();
        let text = format!("# prod\n\n{a}\n");
        assert_eq!(parse_recipients(&text).unwrap(), vec![a]);
        assert!(parse_recipients("age1nope\n").is_err());
    }
}
