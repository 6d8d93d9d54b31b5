//! Sealed values: one secret value, bound to where it may be used, encrypted with age.
//!
//! Wire form (a public contract, see `docs/format.md`):
//!
//! ```text
//! kage:v1:<kid>[,<kid>…]:<standard base64 of a binary age file>
//! ```
//!
//! The age plaintext is a binding header, an empty line, then the value bytes:
//!
//! ```text
//! kage.dev/binding: v1
//! scope: strict
//! namespace: prod
//! name: db
//! key: password
//!
//! <value>
//! ```
//!
//! `namespace` is absent for cluster scope and `name` is absent unless the scope is strict.
//! Anyone holding the private key can recover a value with the `age` CLI alone.

use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{KeyRing, Kid, Recipient};

/// Prefix of every sealed value.
pub const PREFIX: &str = "kage:v1:";
const HEADER_MAGIC: &str = "kage.dev/binding: v1";
/// Largest sealed value accepted (the API server caps objects near 1.5 MiB; leave room for
/// larger files handled offline).
pub const MAX_SEALED_LEN: usize = 64 << 20;

/// How far a sealed value may travel.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "k8s", derive(schemars::JsonSchema))]
pub enum Scope {
    /// Only in this namespace, under this name, under this data key.
    #[default]
    Strict,
    /// Anywhere in this namespace, under this data key.
    Namespace,
    /// Anywhere in the cluster, under this data key.
    Cluster,
}

impl Scope {
    /// `strict`, `namespace` or `cluster`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Strict => "strict",
            Scope::Namespace => "namespace",
            Scope::Cluster => "cluster",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Scope> {
        match s {
            "strict" => Ok(Scope::Strict),
            "namespace" => Ok(Scope::Namespace),
            "cluster" => Ok(Scope::Cluster),
            other => Err(Error::invalid(
                "scope",
                format!("unknown scope {other:?} (expected strict, namespace or cluster)"),
            )),
        }
    }
}

/// Where a value may be used: the scope plus the namespace, name and data key it binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The scope.
    pub scope: Scope,
    /// The namespace (none for cluster scope).
    pub namespace: Option<String>,
    /// The object name (strict scope only).
    pub name: Option<String>,
    /// The data key.
    pub key: String,
}

impl Binding {
    /// The binding of data key `key` of object `namespace/name` under `scope`; keeps only what
    /// the scope binds.
    pub fn new(scope: Scope, namespace: &str, name: &str, key: &str) -> Binding {
        Binding {
            scope,
            namespace: (scope != Scope::Cluster).then(|| namespace.to_string()),
            name: (scope == Scope::Strict).then(|| name.to_string()),
            key: key.to_string(),
        }
    }

    fn check_fields(&self) -> Result<()> {
        let fields = [
            ("namespace", self.namespace.as_deref()),
            ("name", self.name.as_deref()),
            ("key", Some(self.key.as_str())),
        ];
        for (field, value) in fields {
            if let Some(v) = value {
                if v.is_empty() {
                    return Err(Error::invalid(
                        field,
                        format!("a {} binding needs a {field}", self.scope),
                    ));
                }
                if v.chars().any(|c| c.is_control()) {
                    return Err(Error::invalid(field, "contains a control character"));
                }
            }
        }
        Ok(())
    }

    fn header(&self) -> String {
        let mut h = format!("{HEADER_MAGIC}\nscope: {}\n", self.scope);
        if let Some(ns) = &self.namespace {
            h.push_str(&format!("namespace: {ns}\n"));
        }
        if let Some(name) = &self.name {
            h.push_str(&format!("name: {name}\n"));
        }
        h.push_str(&format!("key: {}\n\n", self.key));
        h
    }

    fn parse_header(header: &str) -> Result<Binding> {
        let bad = || Error::corrupt("the binding header inside the value is malformed");
        let mut lines = header.lines();
        if lines.next() != Some(HEADER_MAGIC) {
            return Err(bad());
        }
        let mut field = |name: &str| -> Option<String> {
            let mut peek = lines.clone();
            let line = peek.next()?;
            let v = line.strip_prefix(name)?.strip_prefix(": ")?;
            lines = peek;
            Some(v.to_string())
        };
        let scope: Scope = field("scope").ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let namespace = field("namespace");
        let name = field("name");
        let key = field("key").ok_or_else(bad)?;
        let binding = Binding {
            scope,
            namespace,
            name,
            key,
        };
        // Only the canonical rendering is accepted: no room for two readings of one header.
        if lines.next().is_some() || binding.header() != format!("{header}\n\n") {
            return Err(bad());
        }
        Ok(binding)
    }
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.namespace, &self.name) {
            (Some(ns), Some(name)) => write!(f, "{} {ns}/{name} key {:?}", self.scope, self.key),
            (Some(ns), None) => write!(f, "{} {ns} key {:?}", self.scope, self.key),
            _ => write!(f, "{} key {:?}", self.scope, self.key),
        }
    }
}

/// Seal `value` for `binding` to every recipient (all of them can open it).
///
/// ```
/// use kage_core::keys::{Identity, KeyRing};
/// use kage_core::sealed::{open, seal, Binding, Scope};
/// let id = Identity::generate();
/// let binding = Binding::new(Scope::Strict, "prod", "db", "password");
/// let sealed = seal(b"hunter2", &binding, &[id.recipient()]).unwrap();
/// assert!(sealed.starts_with("kage:v1:"));
/// let ring = KeyRing::from_identities([id]);
/// assert_eq!(&open(&sealed, &binding, &ring).unwrap()[..], b"hunter2");
/// ```
pub fn seal(value: &[u8], binding: &Binding, recipients: &[Recipient]) -> Result<String> {
    if recipients.is_empty() {
        return Err(Error::Encrypt {
            what: "no recipients".into(),
        });
    }
    binding.check_fields()?;
    let header = binding.header();
    let mut plaintext = Zeroizing::new(Vec::with_capacity(header.len() + value.len()));
    plaintext.extend_from_slice(header.as_bytes());
    plaintext.extend_from_slice(value);

    let encryptor = age::Encryptor::with_recipients(
        recipients.iter().map(|r| r.as_age() as &dyn age::Recipient),
    )
    .map_err(|e| Error::Encrypt {
        what: e.to_string(),
    })?;
    let mut ciphertext = Vec::with_capacity(plaintext.len() + 200 + 80 * recipients.len());
    let encrypt_err = |e: std::io::Error| Error::Encrypt {
        what: e.to_string(),
    };
    let mut writer = encryptor
        .wrap_output(&mut ciphertext)
        .map_err(encrypt_err)?;
    writer.write_all(&plaintext).map_err(encrypt_err)?;
    writer.finish().map_err(encrypt_err)?;

    let kids: Vec<String> = recipients.iter().map(|r| r.kid().to_string()).collect();
    Ok(format!(
        "{PREFIX}{}:{}",
        kids.join(","),
        B64.encode(&ciphertext)
    ))
}

/// The parts of a sealed value visible without a key.
#[derive(Debug, Clone)]
pub struct SealedValue {
    /// Key ids of the recipients, in stanza order.
    pub kids: Vec<Kid>,
    /// The binary age file.
    pub ciphertext: Vec<u8>,
}

impl SealedValue {
    /// Parse the wire form (no decryption).
    pub fn parse(sealed: &str) -> Result<SealedValue> {
        if sealed.len() > MAX_SEALED_LEN {
            return Err(Error::corrupt(format!(
                "sealed value is larger than {} MiB",
                MAX_SEALED_LEN >> 20
            )));
        }
        let rest = sealed
            .trim()
            .strip_prefix(PREFIX)
            .ok_or_else(|| Error::corrupt("not a sealed value (expected the prefix kage:v1:)"))?;
        let (kids, b64) = rest
            .split_once(':')
            .ok_or_else(|| Error::corrupt("sealed value has no ciphertext part"))?;
        let kids = kids
            .split(',')
            .map(|k| {
                k.parse::<Kid>()
                    .map_err(|_| Error::corrupt(format!("bad key id {k:?} in sealed value")))
            })
            .collect::<Result<Vec<_>>>()?;
        let ciphertext = B64
            .decode(b64)
            .map_err(|e| Error::corrupt(format!("ciphertext is not valid base64: {e}")))?;
        Ok(SealedValue { kids, ciphertext })
    }
}

/// Whether `s` looks like a sealed value.
pub fn is_sealed(s: &str) -> bool {
    s.trim_start().starts_with(PREFIX)
}

/// The key ids a sealed value names, without decrypting it.
pub fn kids_of(sealed: &str) -> Result<Vec<Kid>> {
    SealedValue::parse(sealed).map(|v| v.kids)
}

/// Open a sealed value and check that it was sealed for `expected`.
///
/// Errors, in the order they are checked: malformed value ([`Error::Corrupt`]), no identity for
/// any of its kids ([`Error::UnknownKey`]), the selected identities fail ([`Error::WrongKey`]),
/// damaged ciphertext ([`Error::Corrupt`]), another binding ([`Error::BindingMismatch`]).
pub fn open(sealed: &str, expected: &Binding, ring: &KeyRing) -> Result<Zeroizing<Vec<u8>>> {
    let (found, value) = open_unchecked(sealed, ring)?;
    if &found != expected {
        return Err(Error::BindingMismatch {
            expected: expected.to_string(),
            found: found.to_string(),
        });
    }
    Ok(value)
}

/// Open a sealed value and return the binding found inside, unchecked (recovery and editing).
pub fn open_unchecked(sealed: &str, ring: &KeyRing) -> Result<(Binding, Zeroizing<Vec<u8>>)> {
    let parsed = SealedValue::parse(sealed)?;
    let identities: Vec<&dyn age::Identity> = parsed
        .kids
        .iter()
        .filter_map(|kid| ring.get(kid))
        .map(|id| id.as_age() as &dyn age::Identity)
        .collect();
    if identities.is_empty() {
        return Err(Error::UnknownKey { kids: parsed.kids });
    }
    let tried = identities.len();
    let decryptor = age::Decryptor::new_buffered(&parsed.ciphertext[..]).map_err(age_error)?;
    let mut reader = decryptor
        .decrypt(identities.into_iter())
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => Error::WrongKey { tried },
            other => age_error(other),
        })?;
    let mut plaintext = Zeroizing::new(Vec::with_capacity(parsed.ciphertext.len()));
    reader.read_to_end(&mut plaintext).map_err(|_| {
        Error::corrupt("ciphertext was modified or truncated (authentication failed)")
    })?;

    let split = plaintext
        .windows(2)
        .position(|w| w == b"\n\n")
        .ok_or_else(|| Error::corrupt("the binding header inside the value is malformed"))?;
    let header = std::str::from_utf8(&plaintext[..split])
        .map_err(|_| Error::corrupt("the binding header inside the value is malformed"))?;
    let binding = Binding::parse_header(header)?;
    let value = Zeroizing::new(plaintext[split + 2..].to_vec());
    Ok((binding, value))
}

fn age_error(e: age::DecryptError) -> Error {
    match e {
        age::DecryptError::NoMatchingKeys => Error::WrongKey { tried: 0 },
        age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => {
            Error::corrupt("not an age file (bad header)")
        }
        age::DecryptError::InvalidMac => {
            Error::corrupt("age header was modified (header MAC mismatch)")
        }
        age::DecryptError::DecryptionFailed | age::DecryptError::KeyDecryptionFailed => {
            Error::corrupt("ciphertext was modified or truncated (authentication failed)")
        }
        other => Error::corrupt(other.to_string()),
    }
}

const BINDING_TEXT_MAGIC: &str = "kage-binding:v1";

/// The plaintext of `spec.binding` in a SOPS-form AgeSecret:
/// `kage-binding:v1;scope=strict;namespace=prod;name=db`.
pub fn binding_text(scope: Scope, namespace: &str, name: &str) -> String {
    let b = Binding::new(scope, namespace, name, "");
    let mut s = format!("{BINDING_TEXT_MAGIC};scope={scope}");
    if let Some(ns) = b.namespace {
        s.push_str(&format!(";namespace={ns}"));
    }
    if let Some(n) = b.name {
        s.push_str(&format!(";name={n}"));
    }
    s
}

/// Parse [`binding_text`] back into scope, namespace and name.
pub fn parse_binding_text(text: &str) -> Result<(Scope, Option<String>, Option<String>)> {
    let bad = || {
        Error::invalid(
            "spec.binding",
            "malformed binding (expected kage-binding:v1;scope=…;namespace=…;name=…)",
        )
    };
    let mut parts = text.split(';');
    if parts.next() != Some(BINDING_TEXT_MAGIC) {
        return Err(bad());
    }
    let (mut scope, mut namespace, mut name) = (None, None, None);
    for part in parts {
        let (k, v) = part.split_once('=').ok_or_else(bad)?;
        let slot = match k {
            "scope" => {
                scope = Some(v.parse::<Scope>().map_err(|_| bad())?);
                continue;
            }
            "namespace" => &mut namespace,
            "name" => &mut name,
            _ => return Err(bad()),
        };
        if slot.replace(v.to_string()).is_some() {
            return Err(bad());
        }
    }
    let scope = scope.ok_or_else(bad)?;
    let consistent = match scope {
        Scope::Strict => namespace.is_some() && name.is_some(),
        Scope::Namespace => namespace.is_some() && name.is_none(),
        Scope::Cluster => namespace.is_none() && name.is_none(),
    };
    if !consistent {
        return Err(bad());
    }
    Ok((scope, namespace, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Identity;

    fn ring(ids: &[&Identity]) -> KeyRing {
        KeyRing::from_identities(ids.iter().map(|i| (*i).clone()))
    }

    #[test]
    fn round_trip_each_scope() {
        let id = Identity::generate();
        for scope in [Scope::Strict, Scope::Namespace, Scope::Cluster] {
            let b = Binding::new(scope, "prod", "db", "password");
            let s = seal(b"v\n\nwith blank lines", &b, &[id.recipient()]).unwrap();
            assert_eq!(
                &open(&s, &b, &ring(&[&id])).unwrap()[..],
                b"v\n\nwith blank lines"
            );
        }
    }

    #[test]
    fn distinct_errors() {
        let id = Identity::generate();
        let other = Identity::generate();
        let b = Binding::new(Scope::Strict, "prod", "db", "password");
        let s = seal(b"secret", &b, &[id.recipient()]).unwrap();

        // Unknown kid.
        let e = open(&s, &b, &ring(&[&other])).unwrap_err();
        assert!(matches!(e, Error::UnknownKey { .. }), "{e}");
        // Kid rewritten to one we hold, but the key does not decrypt.
        let forged = s.replace(id.kid().as_str(), other.kid().as_str());
        let e = open(&forged, &b, &ring(&[&other])).unwrap_err();
        assert!(matches!(e, Error::WrongKey { .. }), "{e}");
        // Moved to another namespace.
        let moved = Binding::new(Scope::Strict, "dev", "db", "password");
        let e = open(&s, &moved, &ring(&[&id])).unwrap_err();
        assert!(matches!(e, Error::BindingMismatch { .. }), "{e}");
        assert!(!e.to_string().contains("secret"));
        // Scope widened in clear.
        let widened = Binding::new(Scope::Cluster, "prod", "db", "password");
        assert!(matches!(
            open(&s, &widened, &ring(&[&id])).unwrap_err(),
            Error::BindingMismatch { .. }
        ));
        // Tampered ciphertext (flip a byte near the end: payload).
        let mut sv = SealedValue::parse(&s).unwrap();
        let n = sv.ciphertext.len();
        sv.ciphertext[n - 5] ^= 1;
        let tampered = format!("{PREFIX}{}:{}", id.kid(), B64.encode(&sv.ciphertext));
        let e = open(&tampered, &b, &ring(&[&id])).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e}");
        // Truncated and bad base64.
        let truncated = &s[..s.len() - 20];
        assert!(matches!(
            open(truncated, &b, &ring(&[&id])).unwrap_err(),
            Error::Corrupt { .. }
        ));
        assert!(matches!(
            open("kage:v1:0011223344556677:***", &b, &ring(&[&id])).unwrap_err(),
            Error::Corrupt { .. }
        ));
        assert!(matches!(
            open("plain", &b, &ring(&[&id])).unwrap_err(),
            Error::Corrupt { .. }
        ));
    }

    #[test]
    fn several_recipients_each_open() {
        let a = Identity::generate();
        let c = Identity::generate();
        let b = Binding::new(Scope::Namespace, "prod", "ignored", "k");
        let s = seal(b"x", &b, &[a.recipient(), c.recipient()]).unwrap();
        assert_eq!(kids_of(&s).unwrap(), vec![a.kid(), c.kid()]);
        assert_eq!(&open(&s, &b, &ring(&[&c])).unwrap()[..], b"x");
        assert_eq!(&open(&s, &b, &ring(&[&a])).unwrap()[..], b"x");
    }

    #[test]
    fn binding_fields_validated() {
        let id = Identity::generate();
        let b = Binding::new(Scope::Strict, "", "db", "k");
        assert!(seal(b"x", &b, &[id.recipient()]).is_err());
        let b = Binding::new(Scope::Strict, "ns", "db", "k\nscope: cluster");
        assert!(seal(b"x", &b, &[id.recipient()]).is_err());
    }

    #[test]
    fn binding_text_round_trip() {
        for scope in [Scope::Strict, Scope::Namespace, Scope::Cluster] {
            let t = binding_text(scope, "prod", "db");
            let (s, ns, name) = parse_binding_text(&t).unwrap();
            assert_eq!(s, scope);
            assert_eq!(ns.is_some(), scope != Scope::Cluster);
            assert_eq!(name.is_some(), scope == Scope::Strict);
        }
        assert!(parse_binding_text("kage-binding:v1;scope=cluster;namespace=x").is_err());
        assert!(parse_binding_text("scope=strict").is_err());
    }
}
