//! The key ring, pure parts: which key is current, when to renew, what to publish.
//!
//! Keys live as Secrets in the controller's namespace (see [`crate::keystore`]), one per key,
//! labelled `kage.dev/key: active|retired`. Active keys decrypt; the newest active key is the
//! *current* key, the one to seal to. Retired keys are kept (so retiring is reversible by
//! relabelling) but no longer decrypt and are not published as recipients.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use kage_core::keys::{Identity, KeyRing, Kid, Recipient};
use serde::Serialize;

pub use kage_core::keysecret::{KEY_DATA, KEY_LABEL};
/// Annotation on key Secrets: creation time (RFC 3339).
pub const CREATED_ANNOTATION: &str = "kage.dev/created";
/// Annotation on key Secrets: the key id (informative).
pub const KID_ANNOTATION: &str = "kage.dev/kid";
/// Annotation on key Secrets: the public recipient (informative).
pub const RECIPIENT_ANNOTATION: &str = "kage.dev/recipient";
/// Annotation on a key Secret: the rotation request it answered.
pub const ROTATION_TOKEN_ANNOTATION: &str = "kage.dev/rotation-token";
/// Annotation on the `kage-public-keys` ConfigMap that requests a new key now. Any new value
/// (e.g. the current time) requests one rotation; only those who may patch ConfigMaps in the
/// controller's namespace (admins) can set it.
pub const ROTATE_ANNOTATION: &str = "kage.dev/rotate";
/// Name of the ConfigMap with the public keys.
pub const PUBLIC_KEYS_CONFIGMAP: &str = "kage-public-keys";
/// Data key of the recipients file in the ConfigMap.
pub const RECIPIENTS_DATA: &str = "recipients.txt";
/// Data key of the JSON key list in the ConfigMap (same document as `GET /v1/keys`).
pub const KEYS_JSON_DATA: &str = "keys.json";

/// Status of a key, from its Secret's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Decrypts; the newest active key is the current one.
    Active,
    /// Kept but unused.
    Retired,
}

impl KeyStatus {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Retired => "retired",
        }
    }

    /// Parse a label value.
    pub fn from_label(s: &str) -> Option<KeyStatus> {
        match s {
            "active" => Some(KeyStatus::Active),
            "retired" => Some(KeyStatus::Retired),
            _ => None,
        }
    }
}

/// One key as read from its Secret.
pub struct KeyEntry {
    /// The private key.
    pub identity: Identity,
    /// Creation time.
    pub created: Timestamp,
    /// Active or retired.
    pub status: KeyStatus,
    /// Name of the Secret holding it.
    pub secret_name: String,
    /// The rotation request this key answered, if any.
    pub rotation_token: Option<String>,
}

/// Public facts about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Key id.
    pub kid: Kid,
    /// Public recipient `age1…`.
    pub recipient: Recipient,
    /// Creation time.
    pub created: Timestamp,
    /// Active or retired.
    pub status: KeyStatus,
    /// Name of the Secret holding it.
    pub secret_name: String,
    /// The rotation request this key answered, if any.
    pub rotation_token: Option<String>,
}

/// The key ring as the controller uses it: public facts plus the active identities.
#[derive(Default)]
pub struct KeySet {
    /// Every key, newest first (ties broken by kid).
    infos: Vec<KeyInfo>,
    /// Active identities only.
    ring: KeyRing,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Public facts only: identities have no Debug on purpose.
        f.debug_struct("KeySet").field("keys", &self.infos).finish()
    }
}

impl KeySet {
    /// Build from the entries read from the key Secrets. The same key in several Secrets counts
    /// once (active wins over retired, then the oldest creation time).
    pub fn from_entries(entries: impl IntoIterator<Item = KeyEntry>) -> KeySet {
        let mut by_kid: BTreeMap<Kid, KeyEntry> = BTreeMap::new();
        for e in entries {
            let kid = e.identity.kid();
            match by_kid.get(&kid) {
                Some(old) if (old.status, old.created) <= (e.status, e.created) => {}
                _ => {
                    by_kid.insert(kid, e);
                }
            }
        }
        let mut infos = Vec::with_capacity(by_kid.len());
        let mut ring = KeyRing::new();
        for (kid, e) in by_kid {
            infos.push(KeyInfo {
                kid,
                recipient: e.identity.recipient(),
                created: e.created,
                status: e.status,
                secret_name: e.secret_name,
                rotation_token: e.rotation_token,
            });
            if e.status == KeyStatus::Active {
                ring.insert(e.identity);
            }
        }
        infos.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.kid.cmp(&b.kid)));
        KeySet { infos, ring }
    }

    /// Every key, newest first.
    pub fn infos(&self) -> &[KeyInfo] {
        &self.infos
    }

    /// The active identities (what decrypts).
    pub fn ring(&self) -> &KeyRing {
        &self.ring
    }

    /// The current key: the newest active one.
    pub fn current(&self) -> Option<&KeyInfo> {
        self.infos.iter().find(|k| k.status == KeyStatus::Active)
    }

    /// Recipients to seal to: the active keys, newest first.
    pub fn active_recipients(&self) -> Vec<Recipient> {
        self.infos
            .iter()
            .filter(|k| k.status == KeyStatus::Active)
            .map(|k| k.recipient.clone())
            .collect()
    }

    /// Number of keys with the given status.
    pub fn count(&self, status: KeyStatus) -> usize {
        self.infos.iter().filter(|k| k.status == status).count()
    }

    /// A public summary that changes whenever the set of usable keys changes.
    pub fn fingerprint(&self) -> String {
        self.infos
            .iter()
            .map(|k| format!("{}:{}", k.kid, k.status.as_str()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Why a new key is needed now, if one is.
    ///
    /// `renew_period` of `None` (flag value 0) never renews on a timer; `rotate_token` is the
    /// value of the [`ROTATE_ANNOTATION`] on the ConfigMap, answered once a key carries it.
    pub fn renewal_due(
        &self,
        now: Timestamp,
        renew_period: Option<Duration>,
        rotate_token: Option<&str>,
    ) -> Option<Renewal> {
        let Some(current) = self.current() else {
            return Some(Renewal::NoActiveKey);
        };
        if let Some(token) = rotate_token.map(str::trim).filter(|t| !t.is_empty())
            && !self
                .infos
                .iter()
                .any(|k| k.rotation_token.as_deref() == Some(token))
        {
            return Some(Renewal::Requested);
        }
        if let Some(period) = renew_period.filter(|p| !p.is_zero()) {
            let age = now.duration_since(current.created);
            if age.as_secs() >= 0 && age.unsigned_abs() >= period {
                return Some(Renewal::Expired);
            }
        }
        None
    }

    /// When the current key will be due for renewal (for the key manager's timer).
    pub fn next_renewal(&self, renew_period: Option<Duration>) -> Option<Timestamp> {
        let period = renew_period.filter(|p| !p.is_zero())?;
        let current = self.current()?;
        let period = jiff::SignedDuration::try_from(period).ok()?;
        current.created.checked_add(period).ok()
    }

    /// The ConfigMap's `recipients.txt`: one `age1…` per line, newest first, each after a
    /// comment line with its kid and creation time. Only active keys are listed.
    pub fn recipients_txt(&self) -> String {
        let mut out = String::from(
            "# kage cluster recipients, newest first (seal to the first; all active keys decrypt)\n",
        );
        for k in self.infos.iter().filter(|k| k.status == KeyStatus::Active) {
            out.push_str(&format!(
                "# kid: {} created: {}\n{}\n",
                k.kid,
                k.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                k.recipient
            ));
        }
        out
    }

    /// The document served at `GET /v1/keys` (and stored as `keys.json` in the ConfigMap).
    pub fn keys_document(&self) -> KeysDocument {
        let current = self.current().map(|k| k.kid.clone());
        KeysDocument {
            keys: self
                .infos
                .iter()
                .map(|k| KeyView {
                    kid: k.kid.to_string(),
                    recipient: k.recipient.to_string(),
                    created: k.created.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    status: k.status,
                    current: current.as_ref() == Some(&k.kid),
                })
                .collect(),
        }
    }
}

/// Why a key is generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// There is no active key (first start, or every key retired).
    NoActiveKey,
    /// An admin requested a rotation.
    Requested,
    /// The current key is older than the renewal period.
    Expired,
}

impl Renewal {
    /// A short PascalCase reason for logs and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Renewal::NoActiveKey => "NoActiveKey",
            Renewal::Requested => "RotationRequested",
            Renewal::Expired => "RenewalPeriodElapsed",
        }
    }
}

/// JSON of `GET /v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeysDocument {
    /// Every key, newest first.
    pub keys: Vec<KeyView>,
}

/// One key in [`KeysDocument`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyView {
    /// Key id.
    pub kid: String,
    /// Public recipient `age1…`.
    pub recipient: String,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
    /// `active` or `retired`.
    pub status: KeyStatus,
    /// True for the key to seal to.
    pub current: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(created: &str, status: KeyStatus) -> KeyEntry {
        KeyEntry {
            identity: Identity::generate(),
            created: created.parse().unwrap(),
            status,
            secret_name: "k".into(),
            rotation_token: None,
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn empty_ring_needs_a_key() {
        let ks = KeySet::default();
        assert!(ks.current().is_none());
        assert_eq!(
            ks.renewal_due(ts("2026-01-01T00:00:00Z"), Some(DAY), None),
            Some(Renewal::NoActiveKey)
        );
        // Even with renewal disabled, a ring without an active key gets one.
        assert_eq!(
            ks.renewal_due(ts("2026-01-01T00:00:00Z"), None, None),
            Some(Renewal::NoActiveKey)
        );
    }

    #[test]
    fn current_is_newest_active() {
        let old = entry("2026-01-01T00:00:00Z", KeyStatus::Active);
        let newer_retired = entry("2026-03-01T00:00:00Z", KeyStatus::Retired);
        let mid = entry("2026-02-01T00:00:00Z", KeyStatus::Active);
        let mid_kid = mid.identity.kid();
        let retired_kid = newer_retired.identity.kid();
        let ks = KeySet::from_entries([old, newer_retired, mid]);
        assert_eq!(ks.current().unwrap().kid, mid_kid);
        assert_eq!(ks.infos().len(), 3);
        assert_eq!(ks.infos()[0].kid, retired_kid, "newest first");
        assert_eq!(ks.ring().len(), 2, "retired keys do not decrypt");
        assert!(!ks.ring().contains(&retired_kid));
        assert_eq!(ks.active_recipients().len(), 2);
        assert_eq!(ks.count(KeyStatus::Active), 2);
        assert_eq!(ks.count(KeyStatus::Retired), 1);
    }

    #[test]
    fn only_retired_keys_means_no_active_key() {
        let ks = KeySet::from_entries([entry("2026-01-01T00:00:00Z", KeyStatus::Retired)]);
        assert!(ks.current().is_none());
        assert_eq!(
            ks.renewal_due(ts("2026-01-02T00:00:00Z"), None, None),
            Some(Renewal::NoActiveKey)
        );
    }

    #[test]
    fn duplicate_key_active_wins() {
        let id = Identity::generate();
        let a = KeyEntry {
            identity: id.clone(),
            created: ts("2026-01-01T00:00:00Z"),
            status: KeyStatus::Retired,
            secret_name: "a".into(),
            rotation_token: None,
        };
        let b = KeyEntry {
            identity: id,
            created: ts("2026-01-02T00:00:00Z"),
            status: KeyStatus::Active,
            secret_name: "b".into(),
            rotation_token: None,
        };
        let ks = KeySet::from_entries([a, b]);
        assert_eq!(ks.infos().len(), 1);
        assert_eq!(ks.infos()[0].status, KeyStatus::Active);
        assert_eq!(ks.infos()[0].secret_name, "b");
    }

    #[test]
    fn renewal_on_period() {
        let ks = KeySet::from_entries([entry("2026-01-01T00:00:00Z", KeyStatus::Active)]);
        let p = Some(30 * DAY);
        assert_eq!(ks.renewal_due(ts("2026-01-30T23:59:59Z"), p, None), None);
        assert_eq!(
            ks.renewal_due(ts("2026-01-31T00:00:00Z"), p, None),
            Some(Renewal::Expired)
        );
        assert_eq!(ks.next_renewal(p), Some(ts("2026-01-31T00:00:00Z")));
        // 0 = never.
        assert_eq!(
            ks.renewal_due(ts("2027-01-01T00:00:00Z"), Some(Duration::ZERO), None),
            None
        );
        assert_eq!(ks.renewal_due(ts("2027-01-01T00:00:00Z"), None, None), None);
        assert_eq!(ks.next_renewal(None), None);
        // A key from the future (clock skew) is not renewed.
        assert_eq!(ks.renewal_due(ts("2025-01-01T00:00:00Z"), p, None), None);
    }

    #[test]
    fn rotation_request_answered_once() {
        let mut e = entry("2026-01-01T00:00:00Z", KeyStatus::Active);
        let now = ts("2026-01-02T00:00:00Z");
        let ks = KeySet::from_entries([entry("2026-01-01T00:00:00Z", KeyStatus::Active)]);
        assert_eq!(
            ks.renewal_due(now, None, Some("t1")),
            Some(Renewal::Requested)
        );
        assert_eq!(ks.renewal_due(now, None, Some("  ")), None);
        e.rotation_token = Some("t1".into());
        let ks = KeySet::from_entries([e]);
        assert_eq!(ks.renewal_due(now, None, Some("t1")), None);
        assert_eq!(
            ks.renewal_due(now, None, Some("t2")),
            Some(Renewal::Requested)
        );
    }

    #[test]
    fn recipients_txt_lists_active_newest_first() {
        let a = entry("2026-01-01T00:00:00Z", KeyStatus::Active);
        let b = entry("2026-02-01T00:00:00Z", KeyStatus::Active);
        let r = entry("2026-03-01T00:00:00Z", KeyStatus::Retired);
        let (ra, rb, rr) = (
            a.identity.recipient().to_string(),
            b.identity.recipient().to_string(),
            r.identity.recipient().to_string(),
        );
        let kb = b.identity.kid();
        let ks = KeySet::from_entries([a, b, r]);
        let txt = ks.recipients_txt();
        let lines: Vec<&str> = txt.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines, [rb.as_str(), ra.as_str()]);
        assert!(!txt.contains(&rr));
        assert!(txt.contains(&format!(
            "# kid: {kb} created: 2026-02-01T00:00:00Z\n{rb}\n"
        )));
        // Parses with the standard recipients-file reader.
        assert_eq!(kage_core::keys::parse_recipients(&txt).unwrap().len(), 2);
        assert!(!txt.contains("AGE-SECRET-KEY"));
    }

    #[test]
    fn keys_document_json() {
        let a = entry("2026-01-01T00:00:00Z", KeyStatus::Active);
        let r = entry("2026-03-01T00:00:00Z", KeyStatus::Retired);
        let ka = a.identity.kid().to_string();
        let ks = KeySet::from_entries([a, r]);
        let v = serde_json::to_value(ks.keys_document()).unwrap();
        let keys = v["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0]["status"], "retired");
        assert_eq!(keys[0]["current"], false);
        assert_eq!(keys[1]["kid"], ka.as_str());
        assert_eq!(keys[1]["status"], "active");
        assert_eq!(keys[1]["current"], true);
        assert_eq!(keys[1]["created"], "2026-01-01T00:00:00Z");
        assert!(keys[1]["recipient"].as_str().unwrap().starts_with("age1"));
        assert!(!v.to_string().contains("AGE-SECRET-KEY"));
    }

    #[test]
    fn fingerprint_tracks_status() {
        let id = Identity::generate();
        let mk = |status| KeyEntry {
            identity: id.clone(),
            created: ts("2026-01-01T00:00:00Z"),
            status,
            secret_name: "a".into(),
            rotation_token: None,
        };
        let a = KeySet::from_entries([mk(KeyStatus::Active)]);
        let r = KeySet::from_entries([mk(KeyStatus::Retired)]);
        assert_ne!(a.fingerprint(), r.fingerprint());
        assert_eq!(
            a.fingerprint(),
            KeySet::from_entries([mk(KeyStatus::Active)]).fingerprint()
        );
    }
}
