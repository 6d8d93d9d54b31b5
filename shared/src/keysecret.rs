//! The key Secrets of a cluster's key ring: their names, labels and annotations, and the
//! authenticator that tells a key Secret kage made from one that merely looks like it.
//!
//! Each key lives in a Secret `kage-key-<kid>` of the controller's namespace, labelled
//! `kage.dev/key: active|retired`, the identity in data key `key.txt` (age-keygen format). The
//! label alone proves nothing: anything that can get a Secret of that shape written into the
//! namespace (for example an AgeSecret decrypted there) would otherwise plant a key that the
//! controller publishes as current, so that everything sealed afterwards opens with the planter's
//! private key (docs/security.md, "Key injection").
//!
//! So every key Secret carries `kage.dev/key-auth`: an HMAC-SHA-256, under a random ring
//! authentication key, over the Secret's namespace, name and identities. The authentication key
//! lives in the Secret [`AUTH_SECRET`] of the same namespace, which only the controller and key
//! administrators (`kage keys restore`) can read or create. A key Secret without a valid
//! authenticator is never loaded. The MAC is keyed, so it says nothing about the identity to
//! whoever reads the annotation.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::{CryptoRng, RngCore};
use secrecy::ExposeSecret;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::keys::Identity;

/// Label on key Secrets: `active` or `retired`.
pub const KEY_LABEL: &str = "kage.dev/key";
/// Prefix of every key Secret's name (`kage-key-<kid>`).
pub const KEY_SECRET_PREFIX: &str = "kage-key-";
/// Data key of the identity file in a key Secret (age-keygen format).
pub const KEY_DATA: &str = "key.txt";
/// Annotation on key Secrets: the authenticator ([`RingAuthKey::authenticate`]).
pub const AUTH_ANNOTATION: &str = "kage.dev/key-auth";
/// The Secret holding the ring authentication key. Its name starts with `kage-key` too, so the
/// one rule that reserves key names covers it.
pub const AUTH_SECRET: &str = "kage-keyring-auth";
/// Data key of the ring authentication key in [`AUTH_SECRET`] (32 raw bytes).
pub const AUTH_DATA: &str = "hmac-sha256.key";
/// The label and annotation domain kage itself writes; never copied from an AgeSecret template.
pub const RESERVED_DOMAIN: &str = "kage.dev";

/// The name of the key Secret of `kid`.
pub fn key_secret_name(kid: &crate::keys::Kid) -> String {
    format!("{KEY_SECRET_PREFIX}{kid}")
}

/// Is `name` reserved for the key ring in the controller's namespace (key Secrets and
/// [`AUTH_SECRET`])? Nothing but the key ring may write a Secret of such a name there.
pub fn is_reserved_secret_name(name: &str) -> bool {
    name.starts_with("kage-key")
}

/// Is this label or annotation key in kage's own domain (`kage.dev/…` or `*.kage.dev/…`)?
pub fn is_reserved_metadata_key(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else {
        return false;
    };
    let prefix = prefix.to_ascii_lowercase();
    prefix == RESERVED_DOMAIN || prefix.ends_with(".kage.dev")
}

/// Why a key Secret is not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    /// No `kage.dev/key-auth` annotation.
    #[error("it has no {AUTH_ANNOTATION} annotation")]
    Missing,
    /// The annotation is there but does not authenticate this Secret's keys, name and namespace.
    #[error("its {AUTH_ANNOTATION} annotation does not match (not made by this key ring)")]
    Mismatch,
    /// It is written by an AgeSecret (owner reference or `kage.dev/managed`): never a key.
    #[error("it is a Secret decrypted from an AgeSecret, not a key Secret")]
    FromAgeSecret,
}

/// The ring authentication key: 32 random bytes, wiped on drop, no `Debug`.
#[derive(Clone)]
pub struct RingAuthKey(Zeroizing<[u8; 32]>);

/// The length of a ring authentication key.
pub const AUTH_KEY_LEN: usize = 32;

impl RingAuthKey {
    /// A fresh key from the caller's cryptographic random source.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> RingAuthKey {
        let mut key = Zeroizing::new([0u8; AUTH_KEY_LEN]);
        rng.fill_bytes(key.as_mut());
        RingAuthKey(key)
    }

    /// The key as stored in [`AUTH_SECRET`]; `None` unless exactly [`AUTH_KEY_LEN`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<RingAuthKey> {
        let key: [u8; AUTH_KEY_LEN] = bytes.try_into().ok()?;
        Some(RingAuthKey(Zeroizing::new(key)))
    }

    /// The raw bytes (to store in [`AUTH_SECRET`]).
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_ref()
    }

    fn mac(&self, namespace: &str, name: &str, identities: &[Identity]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.0.as_ref()).expect("HMAC takes keys of any length");
        // Length-prefixed fields: no two different inputs give the same byte string.
        mac.update(b"kage key secret v1");
        let mut field = |bytes: &[u8]| {
            mac.update(&(bytes.len() as u64).to_be_bytes());
            mac.update(bytes);
        };
        field(namespace.as_bytes());
        field(name.as_bytes());
        for identity in identities {
            let secret = identity.to_secret_string();
            field(secret.expose_secret().as_bytes());
        }
        mac
    }

    /// The `kage.dev/key-auth` value of a key Secret holding `identities` (base64).
    pub fn authenticate(&self, namespace: &str, name: &str, identities: &[Identity]) -> String {
        STANDARD.encode(
            self.mac(namespace, name, identities)
                .finalize()
                .into_bytes(),
        )
    }

    /// Does `annotation` authenticate these identities under this name and namespace?
    /// Constant-time in the comparison.
    pub fn verify(
        &self,
        namespace: &str,
        name: &str,
        identities: &[Identity],
        annotation: Option<&str>,
    ) -> Result<(), Untrusted> {
        let annotation = annotation.ok_or(Untrusted::Missing)?;
        let tag = STANDARD
            .decode(annotation.trim())
            .map_err(|_| Untrusted::Mismatch)?;
        self.mac(namespace, name, identities)
            .verify_slice(&tag)
            .map_err(|_| Untrusted::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> RingAuthKey {
        RingAuthKey::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn authenticator_binds_key_name_namespace_and_identities() {
        let id = Identity::generate();
        let other = Identity::generate();
        let name = key_secret_name(&id.kid());
        let tag = key(1).authenticate("kage-system", &name, std::slice::from_ref(&id));
        let ok = |k: &RingAuthKey, ns: &str, n: &str, ids: &[Identity], t: Option<&str>| {
            k.verify(ns, n, ids, t)
        };
        let one = std::slice::from_ref(&id);
        assert_eq!(ok(&key(1), "kage-system", &name, one, Some(&tag)), Ok(()));
        // Another ring, namespace, name or key: refused.
        assert_eq!(
            ok(&key(2), "kage-system", &name, one, Some(&tag)),
            Err(Untrusted::Mismatch)
        );
        assert_eq!(
            ok(&key(1), "other", &name, one, Some(&tag)),
            Err(Untrusted::Mismatch)
        );
        assert_eq!(
            ok(&key(1), "kage-system", "kage-key-x", one, Some(&tag)),
            Err(Untrusted::Mismatch)
        );
        assert_eq!(
            ok(
                &key(1),
                "kage-system",
                &name,
                std::slice::from_ref(&other),
                Some(&tag)
            ),
            Err(Untrusted::Mismatch)
        );
        assert_eq!(
            ok(
                &key(1),
                "kage-system",
                &name,
                &[id.clone(), other],
                Some(&tag)
            ),
            Err(Untrusted::Mismatch)
        );
        assert_eq!(
            ok(&key(1), "kage-system", &name, one, None),
            Err(Untrusted::Missing)
        );
        assert_eq!(
            ok(&key(1), "kage-system", &name, one, Some("not base64!")),
            Err(Untrusted::Mismatch)
        );
    }

    #[test]
    fn length_prefixes_keep_fields_apart() {
        let id = Identity::generate();
        let k = key(7);
        let a = k.authenticate("ab", "c", std::slice::from_ref(&id));
        let b = k.authenticate("a", "bc", std::slice::from_ref(&id));
        assert_ne!(a, b);
    }

    #[test]
    fn authenticator_does_not_contain_the_identity() {
        let id = Identity::generate();
        let tag = key(3).authenticate("ns", "n", std::slice::from_ref(&id));
        assert_eq!(STANDARD.decode(&tag).unwrap().len(), 32);
        assert!(!tag.contains("AGE-SECRET-KEY"));
    }

    #[test]
    fn keys_come_from_the_callers_rng_and_have_one_length() {
        use rand::SeedableRng;
        let mut a = rand::rngs::StdRng::seed_from_u64(1);
        let mut b = rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(
            RingAuthKey::generate(&mut a).as_bytes(),
            RingAuthKey::generate(&mut b).as_bytes()
        );
        assert!(RingAuthKey::from_bytes(&[0; 31]).is_none());
        assert!(RingAuthKey::from_bytes(&[0; 33]).is_none());
    }

    #[test]
    fn reserved_names_and_domains() {
        assert!(is_reserved_secret_name("kage-key-0123456789abcdef"));
        assert!(is_reserved_secret_name(AUTH_SECRET));
        assert!(!is_reserved_secret_name("db"));
        assert!(!is_reserved_secret_name("my-kage-key"));
        assert!(is_reserved_metadata_key("kage.dev/key"));
        assert!(is_reserved_metadata_key("KAGE.DEV/key"));
        assert!(is_reserved_metadata_key("rollout.kage.dev/x"));
        assert!(!is_reserved_metadata_key("kage.dev"));
        assert!(!is_reserved_metadata_key("app.kubernetes.io/name"));
        assert!(!is_reserved_metadata_key("notkage.dev/x"));
    }
}
