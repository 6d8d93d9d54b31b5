//! The key ring's Kubernetes side: key Secrets in the controller's namespace, the
//! `kage-public-keys` ConfigMap, key generation and renewal.
//!
//! Every replica watches the key Secrets (so `/v1/verify` and `/v1/reencrypt` work everywhere);
//! only the leader generates keys and publishes the ConfigMap ([`KeyManager`]).
//!
//! A key Secret is `kage-key-<kid>`, type `Opaque`, labelled `kage.dev/key: active|retired`,
//! with the identity in data key `key.txt` in age-keygen format, and annotations
//! `kage.dev/created` (RFC 3339), `kage.dev/kid` and `kage.dev/recipient`. `kage keys restore`
//! writes the same shape. A labelled Secret becomes a key only with a valid authenticator
//! ([`crate::keytrust`]); the others are ignored and reported.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kage_core::keys::{Identity, parse_identity_file};
use kage_core::keysecret::{AUTH_ANNOTATION, RingAuthKey, Untrusted, key_secret_name};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::keys::{
    CREATED_ANNOTATION, KEY_DATA, KEY_LABEL, KEYS_JSON_DATA, KID_ANNOTATION, KeyEntry, KeySet,
    KeyStatus, PUBLIC_KEYS_CONFIGMAP, RECIPIENT_ANNOTATION, RECIPIENTS_DATA, ROTATE_ANNOTATION,
    ROTATION_TOKEN_ANNOTATION,
};
use crate::keytrust::{self, RefusalReporter, Refused};
use crate::metrics::Metrics;
use crate::{Error, FIELD_MANAGER, Result};

/// Label on every object kage itself owns in its namespace (keys, ConfigMap).
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";

/// The current key set, shared by the reconciler, the HTTP API and the metrics.
pub struct KeyState {
    keys: RwLock<Arc<KeySet>>,
    auth: OnceLock<RingAuthKey>,
    loaded: AtomicBool,
    version: watch::Sender<u64>,
}

impl std::fmt::Debug for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyState")
            .field("keys", &self.get())
            .finish()
    }
}

impl Default for KeyState {
    fn default() -> Self {
        KeyState {
            keys: RwLock::new(Arc::new(KeySet::default())),
            auth: OnceLock::new(),
            loaded: AtomicBool::new(false),
            version: watch::channel(0).0,
        }
    }
}

impl KeyState {
    /// A state holding `keys`, marked loaded (tests, tools).
    pub fn with_keys(keys: KeySet) -> KeyState {
        let s = KeyState::default();
        s.set(keys);
        s
    }

    /// The current key set.
    pub fn get(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replace the key set; returns whether the usable keys changed (then subscribers are told).
    pub fn set(&self, keys: KeySet) -> bool {
        let changed = {
            let mut guard = self.keys.write().unwrap_or_else(|e| e.into_inner());
            let changed = guard.fingerprint() != keys.fingerprint();
            *guard = Arc::new(keys);
            changed
        };
        let first_load = !self.loaded.swap(true, Ordering::SeqCst);
        // The first load is news too (an empty ring must wake the key manager).
        if changed || first_load {
            self.version.send_modify(|v| *v += 1);
        }
        changed
    }

    /// The ring authentication key, once read (before the first [`KeyState::set`] of a
    /// running controller).
    pub fn auth(&self) -> Option<&RingAuthKey> {
        self.auth.get()
    }

    /// Record the ring authentication key (the first one stays).
    pub fn set_auth(&self, key: RingAuthKey) {
        let _ = self.auth.set(key);
    }

    /// Whether the key Secrets were listed at least once.
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::SeqCst)
    }

    /// A counter that grows on every change of the usable keys (read it before [`KeyState::get`]:
    /// a stale version then only causes extra work).
    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    /// Notified on every change of the usable keys.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}

/// Why a labelled Secret gave no keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// Not a readable key Secret (logged without key material).
    Malformed,
    /// A readable key Secret the ring does not trust.
    Untrusted(Untrusted),
}

/// The identities in a key Secret's `key.txt`; the error says what is wrong (no key material).
pub fn identities_of(secret: &Secret) -> std::result::Result<Vec<Identity>, String> {
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(KEY_DATA))
        .ok_or_else(|| format!("has no {KEY_DATA}"))?;
    let text = std::str::from_utf8(&data.0).map_err(|_| format!("{KEY_DATA} is not UTF-8"))?;
    let text = Zeroizing::new(text.to_string());
    parse_identity_file(&text).map_err(|e| format!("{KEY_DATA} does not parse: {e}"))
}

/// Read one key Secret: its keys when it is a well-formed key Secret that `auth` authenticates.
pub fn entries_from_secret(
    secret: &Secret,
    auth: &RingAuthKey,
) -> std::result::Result<Vec<KeyEntry>, Ignored> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let labels = secret.metadata.labels.as_ref();
    let Some(status) = labels
        .and_then(|l| l.get(KEY_LABEL))
        .and_then(|v| KeyStatus::from_label(v))
    else {
        warn!(secret = %name, "key Secret has no valid {KEY_LABEL} label (active|retired); ignored");
        return Err(Ignored::Malformed);
    };
    let identities = match identities_of(secret) {
        Ok(ids) => ids,
        Err(why) => {
            warn!(secret = %name, "key Secret {why}; ignored");
            return Err(Ignored::Malformed);
        }
    };
    keytrust::check(auth, secret, &identities).map_err(Ignored::Untrusted)?;
    let annotations = secret.metadata.annotations.as_ref();
    let comment_created = secret
        .data
        .as_ref()
        .and_then(|d| d.get(KEY_DATA))
        .and_then(|b| std::str::from_utf8(&b.0).ok())
        .and_then(created_comment);
    let created = annotations
        .and_then(|a| a.get(CREATED_ANNOTATION))
        .and_then(|v| v.parse::<Timestamp>().ok())
        .or(comment_created)
        .or_else(|| secret.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let rotation_token = annotations
        .and_then(|a| a.get(ROTATION_TOKEN_ANNOTATION))
        .cloned();
    Ok(identities
        .into_iter()
        .map(|identity| KeyEntry {
            identity,
            created,
            status,
            secret_name: name.clone(),
            rotation_token: rotation_token.clone(),
        })
        .collect())
}

/// The `# created: …` line age-keygen writes.
fn created_comment(text: &str) -> Option<Timestamp> {
    text.lines()
        .find_map(|l| l.strip_prefix("# created: "))
        .and_then(|v| v.trim().parse().ok())
}

/// The Secret holding a freshly generated key, authenticated with `auth`.
pub fn key_secret(
    namespace: &str,
    identity: &Identity,
    created: Timestamp,
    rotation_token: Option<&str>,
    auth: &RingAuthKey,
) -> Secret {
    let kid = identity.kid();
    let name = key_secret_name(&kid);
    let file = kage_core::keys::format_identity_file(identity, created);
    let mut annotations = BTreeMap::from([
        // Full precision: two keys created within one second still sort newest first.
        (CREATED_ANNOTATION.to_string(), created.to_string()),
        (KID_ANNOTATION.to_string(), kid.to_string()),
        (
            RECIPIENT_ANNOTATION.to_string(),
            identity.recipient().to_string(),
        ),
    ]);
    if let Some(t) = rotation_token {
        annotations.insert(ROTATION_TOKEN_ANNOTATION.to_string(), t.to_string());
    }
    annotations.insert(
        AUTH_ANNOTATION.to_string(),
        auth.authenticate(namespace, &name, std::slice::from_ref(identity)),
    );
    Secret {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                (
                    KEY_LABEL.to_string(),
                    KeyStatus::Active.as_str().to_string(),
                ),
                (PART_OF_LABEL.to_string(), "kage".to_string()),
            ])),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            KEY_DATA.to_string(),
            ByteString(file.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// The `kage-public-keys` ConfigMap body (server-side applied).
pub fn public_keys_configmap(namespace: &str, keys: &KeySet) -> Result<ConfigMap> {
    let json = serde_json::to_string_pretty(&keys.keys_document())?;
    Ok(ConfigMap {
        metadata: ObjectMeta {
            name: Some(PUBLIC_KEYS_CONFIGMAP.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([(
                PART_OF_LABEL.to_string(),
                "kage".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            (RECIPIENTS_DATA.to_string(), keys.recipients_txt()),
            (KEYS_JSON_DATA.to_string(), json + "\n"),
        ])),
        ..ConfigMap::default()
    })
}

/// Rebuild the key set from the cached key Secrets; also the labelled Secrets it refused.
pub fn keyset_from_store(store: &Store<Secret>, auth: &RingAuthKey) -> (KeySet, Vec<Refused>) {
    let mut entries = Vec::new();
    let mut refused = Vec::new();
    for secret in store.state() {
        match entries_from_secret(&secret, auth) {
            Ok(e) => entries.extend(e),
            Err(Ignored::Malformed) => {}
            Err(Ignored::Untrusted(why)) => refused.push(Refused {
                name: secret.metadata.name.clone().unwrap_or_default(),
                resource_version: secret.metadata.resource_version.clone().unwrap_or_default(),
                why,
            }),
        }
    }
    refused.sort_by(|a, b| a.name.cmp(&b.name));
    (KeySet::from_entries(entries), refused)
}

/// Watch the key Secrets of `namespace` and keep `state` current. Reads (or creates) the ring
/// authentication key first. Runs until the stream ends.
pub async fn watch_keys(
    client: kube::Client,
    namespace: String,
    state: Arc<KeyState>,
    metrics: Arc<Metrics>,
    recorder: Recorder,
) {
    let auth = keytrust::ensure_auth_key(&client, &namespace).await;
    state.set_auth(auth.clone());
    let mut reporter = RefusalReporter::new(recorder, namespace.clone());
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default().labels(KEY_LABEL))
        .default_backoff()
        .reflect(writer);
    futures::pin_mut!(stream);
    let mut ready = false;
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::InitDone) => ready = true,
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => continue,
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "watching key Secrets");
                continue;
            }
        }
        if ready {
            let (keys, refused) = keyset_from_store(&reader, &auth);
            metrics.set_untrusted_key_secrets(refused.len());
            reporter.report(&refused).await;
            let summary = keys.fingerprint();
            if state.set(keys) {
                info!(keys = %summary, "key ring changed");
            }
        }
    }
}

/// The leader's key duties: generate the first key, renew on the period and on request, and
/// publish the public keys.
pub struct KeyManager {
    /// Client.
    pub client: kube::Client,
    /// The controller's namespace.
    pub namespace: String,
    /// Renewal period (`None` = never).
    pub renew_period: Option<Duration>,
    /// Shared key state (fed by [`watch_keys`]).
    pub state: Arc<KeyState>,
}

impl KeyManager {
    /// Run until `shutdown` fires.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut changes = self.state.subscribe();
        let cm_api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let cm_stream = watcher(
            cm_api,
            watcher::Config::default().fields(&format!("metadata.name={PUBLIC_KEYS_CONFIGMAP}")),
        )
        .default_backoff()
        .applied_objects();
        futures::pin_mut!(cm_stream);
        let mut configmap: Option<ConfigMap> = None;
        let mut pending: Option<(String, tokio::time::Instant)> = None;
        loop {
            if self.state.loaded() {
                match self.step(configmap.as_ref(), &mut pending).await {
                    Ok(()) => {}
                    Err(e) => warn!(error = %e, "key manager"),
                }
            }
            let keys = self.state.get();
            let sleep_for = keys
                .next_renewal(self.renew_period)
                .map(|t| {
                    let d = t.duration_since(Timestamp::now());
                    Duration::from_secs(d.as_secs().max(1) as u64)
                })
                .unwrap_or(Duration::from_secs(300))
                .min(Duration::from_secs(300));
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = changes.changed() => {}
                cm = cm_stream.next() => match cm {
                    Some(Ok(cm)) => configmap = Some(cm),
                    Some(Err(e)) => warn!(error = %e, "watching {PUBLIC_KEYS_CONFIGMAP}"),
                    None => return,
                },
                _ = tokio::time::sleep(sleep_for) => {}
            }
        }
    }

    async fn step(
        &self,
        configmap: Option<&ConfigMap>,
        pending: &mut Option<(String, tokio::time::Instant)>,
    ) -> Result<()> {
        let keys = self.state.get();
        // A key we created but the watch has not shown yet: wait for it (up to a minute).
        if let Some((name, since)) = pending.as_ref() {
            let seen = keys.infos().iter().any(|k| &k.secret_name == name);
            if seen || since.elapsed() > Duration::from_secs(60) {
                *pending = None;
            } else {
                return Ok(());
            }
        }
        let token = configmap
            .and_then(|cm| cm.metadata.annotations.as_ref())
            .and_then(|a| a.get(ROTATE_ANNOTATION))
            .map(String::as_str);
        if let Some(why) = keys.renewal_due(Timestamp::now(), self.renew_period, token) {
            let name = self.generate(why, token).await?;
            *pending = Some((name, tokio::time::Instant::now()));
            return Ok(());
        }
        self.publish(&keys, configmap).await
    }

    async fn generate(&self, why: crate::keys::Renewal, token: Option<&str>) -> Result<String> {
        let identity = Identity::generate();
        let token = (why == crate::keys::Renewal::Requested)
            .then_some(token)
            .flatten()
            .map(str::trim);
        let auth = self.state.auth().ok_or_else(|| {
            Error::KeyRing("the ring authentication key is not loaded yet".into())
        })?;
        let secret = key_secret(&self.namespace, &identity, Timestamp::now(), token, auth);
        let name = secret.metadata.name.clone().unwrap_or_default();
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        match api
            .create(
                &PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PostParams::default()
                },
                &secret,
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(Error::Kube(e)),
        }
        info!(kid = %identity.kid(), secret = %name, reason = why.as_str(), "generated a new key");
        Ok(name)
    }

    async fn publish(&self, keys: &KeySet, current: Option<&ConfigMap>) -> Result<()> {
        let desired = public_keys_configmap(&self.namespace, keys)?;
        let up_to_date = current
            .and_then(|cm| cm.data.as_ref())
            .is_some_and(|d| Some(d) == desired.data.as_ref());
        if up_to_date {
            return Ok(());
        }
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        api.patch(
            PUBLIC_KEYS_CONFIGMAP,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await?;
        info!(
            keys = keys.infos().len(),
            "published {PUBLIC_KEYS_CONFIGMAP}"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn auth() -> RingAuthKey {
        RingAuthKey::from_bytes(&[9; 32]).unwrap()
    }

    fn entries(s: &Secret) -> Vec<KeyEntry> {
        entries_from_secret(s, &auth()).unwrap_or_default()
    }

    #[test]
    fn key_secret_round_trips() {
        let id = Identity::generate();
        let created: Timestamp = "2026-11-28T10:00:00Z".parse().unwrap();
        let s = key_secret("kage-system", &id, created, Some("t1"), &auth());
        assert_eq!(
            s.metadata.name.as_deref(),
            Some(format!("kage-key-{}", id.kid()).as_str())
        );
        let entries = entries(&s);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].identity.kid(), id.kid());
        assert_eq!(entries[0].created, created);
        assert_eq!(entries[0].status, KeyStatus::Active);
        assert_eq!(entries[0].rotation_token.as_deref(), Some("t1"));
        // The identity file is exactly age-keygen's.
        let text = std::str::from_utf8(&s.data.as_ref().unwrap()[KEY_DATA].0).unwrap();
        assert!(text.starts_with("# created: 2026-11-28T10:00:00Z\n# public key: age1"));
    }

    #[test]
    fn restored_secret_without_created_annotation_uses_file_comment() {
        let id = Identity::generate();
        let created: Timestamp = "2025-01-02T03:04:05Z".parse().unwrap();
        let mut s = key_secret("ns", &id, created, None, &auth());
        s.metadata
            .annotations
            .as_mut()
            .unwrap()
            .retain(|k, _| k == AUTH_ANNOTATION);
        s.metadata.labels = Some([(KEY_LABEL.to_string(), "retired".to_string())].into());
        let e = entries(&s);
        assert_eq!(e[0].created, created);
        assert_eq!(e[0].status, KeyStatus::Retired);
    }

    #[test]
    fn bad_key_secrets_are_ignored() {
        let id = Identity::generate();
        let now = Timestamp::now();
        let mut s = key_secret("ns", &id, now, None, &auth());
        s.metadata.labels = Some([(KEY_LABEL.to_string(), "weird".to_string())].into());
        assert_eq!(
            entries_from_secret(&s, &auth()).err(),
            Some(Ignored::Malformed)
        );
        let mut s = key_secret("ns", &id, now, None, &auth());
        s.data = Some([(KEY_DATA.to_string(), ByteString(b"garbage".to_vec()))].into());
        assert_eq!(
            entries_from_secret(&s, &auth()).err(),
            Some(Ignored::Malformed)
        );
        let mut s = key_secret("ns", &id, now, None, &auth());
        s.data = None;
        assert_eq!(
            entries_from_secret(&s, &auth()).err(),
            Some(Ignored::Malformed)
        );
    }

    /// The key-injection finding: a Secret of exactly the key shape that kage did not make
    /// (no authenticator, another ring's, or one decrypted from an AgeSecret) gives no key.
    #[test]
    fn key_secrets_kage_did_not_make_are_untrusted() {
        let id = Identity::generate();
        let now = Timestamp::now();
        let mut planted = key_secret("kage-system", &id, now, None, &auth());
        planted
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .remove(AUTH_ANNOTATION);
        assert_eq!(
            entries_from_secret(&planted, &auth()).err(),
            Some(Ignored::Untrusted(Untrusted::Missing))
        );
        let other_ring = RingAuthKey::from_bytes(&[1; 32]).unwrap();
        let forged = key_secret("kage-system", &id, now, None, &other_ring);
        assert_eq!(
            entries_from_secret(&forged, &auth()).err(),
            Some(Ignored::Untrusted(Untrusted::Mismatch))
        );
        // A valid authenticator copied onto another key is refused too.
        let mut swapped = key_secret("kage-system", &id, now, None, &auth());
        let other = key_secret("kage-system", &Identity::generate(), now, None, &auth());
        swapped.data = other.data.clone();
        assert_eq!(
            entries_from_secret(&swapped, &auth()).err(),
            Some(Ignored::Untrusted(Untrusted::Mismatch))
        );
        // Written from an AgeSecret: never a key, whatever it carries.
        let mut from_ags = key_secret("kage-system", &id, now, None, &auth());
        from_ags.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "kage.dev/v1alpha1".into(),
            kind: "AgeSecret".into(),
            name: from_ags.metadata.name.clone().unwrap(),
            uid: "u".into(),
            ..OwnerReference::default()
        }]);
        assert_eq!(
            entries_from_secret(&from_ags, &auth()).err(),
            Some(Ignored::Untrusted(Untrusted::FromAgeSecret))
        );
        let mut managed = key_secret("kage-system", &id, now, None, &auth());
        managed
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(crate::MANAGED_ANNOTATION.into(), "true".into());
        assert_eq!(
            entries_from_secret(&managed, &auth()).err(),
            Some(Ignored::Untrusted(Untrusted::FromAgeSecret))
        );
    }

    #[test]
    fn store_keeps_trusted_keys_and_lists_refused_ones() {
        let (reader, mut writer) = reflector::store::<Secret>();
        let good = Identity::generate();
        let bad = Identity::generate();
        let mut trusted = key_secret("kage-system", &good, Timestamp::now(), None, &auth());
        trusted.metadata.resource_version = Some("1".into());
        let mut planted = key_secret(
            "kage-system",
            &bad,
            Timestamp::now(),
            None,
            &RingAuthKey::from_bytes(&[2; 32]).unwrap(),
        );
        planted.metadata.resource_version = Some("7".into());
        writer.apply_watcher_event(&watcher::Event::Apply(trusted));
        writer.apply_watcher_event(&watcher::Event::Apply(planted.clone()));
        let (keys, refused) = keyset_from_store(&reader, &auth());
        assert_eq!(keys.infos().len(), 1);
        assert_eq!(keys.infos()[0].kid, good.kid());
        assert_eq!(
            refused,
            vec![Refused {
                name: planted.metadata.name.clone().unwrap(),
                resource_version: "7".into(),
                why: Untrusted::Mismatch,
            }]
        );
    }

    #[test]
    fn configmap_has_recipients_and_json_but_no_private_key() {
        let id = Identity::generate();
        let s = key_secret("ns", &id, Timestamp::now(), None, &auth());
        let keys = KeySet::from_entries(entries(&s));
        let cm = public_keys_configmap("ns", &keys).unwrap();
        let data = cm.data.unwrap();
        assert!(data[RECIPIENTS_DATA].contains(&id.recipient().to_string()));
        let json: serde_json::Value = serde_json::from_str(&data[KEYS_JSON_DATA]).unwrap();
        assert_eq!(json["keys"][0]["kid"], id.kid().to_string());
        for v in data.values() {
            assert!(!v.contains("AGE-SECRET-KEY"));
        }
    }

    #[test]
    fn state_notifies_on_change_only() {
        let state = KeyState::default();
        assert!(!state.loaded());
        let rx = state.subscribe();
        assert!(!state.set(KeySet::default()), "empty to empty");
        assert!(state.loaded());
        assert!(rx.has_changed().unwrap(), "the first load is announced");
        let mut rx = state.subscribe();
        assert!(!state.set(KeySet::default()));
        assert!(!rx.has_changed().unwrap());
        rx.mark_unchanged();
        let id = Identity::generate();
        let s = key_secret("ns", &id, Timestamp::now(), None, &auth());
        assert!(state.set(KeySet::from_entries(entries(&s))));
        assert!(rx.has_changed().unwrap());
        assert!(!state.set(KeySet::from_entries(entries(&s))));
        assert_eq!(state.get().infos().len(), 1);
    }
}
