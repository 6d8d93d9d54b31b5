//! Which key Secrets the key ring trusts, and the ring authentication key behind that decision.
//!
//! A Secret labelled `kage.dev/key` in the controller's namespace becomes a key only when it
//! carries a valid `kage.dev/key-auth` authenticator ([`kage_core::keysecret`]) and was not
//! written from an AgeSecret. Everything else is ignored, counted in
//! `kage_key_secrets_untrusted` and reported once per version in a Warning event on the Secret
//! (docs/security.md, "Key injection").
//!
//! The ring authentication key lives in the Secret `kage-keyring-auth`; the first replica that
//! finds it missing creates it and, at that moment only, authenticates the key Secrets made by
//! kage versions that had no authenticator (the upgrade path; a Secret written from an
//! AgeSecret is never adopted).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kage_core::keys::Identity;
use kage_core::keysecret::{
    AUTH_ANNOTATION, AUTH_DATA, AUTH_SECRET, KEY_LABEL, RingAuthKey, Untrusted,
};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder};
use tracing::{error, info, warn};

use crate::keystore::PART_OF_LABEL;
use crate::{Error, FIELD_MANAGER, MANAGED_ANNOTATION, Result};

/// Was this Secret written from an AgeSecret (so it can never be a key)?
pub fn from_agesecret(secret: &Secret) -> bool {
    let managed = secret
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MANAGED_ANNOTATION));
    let owned = secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "AgeSecret");
    managed || owned
}

/// Is the key Secret `secret` holding `identities` one the ring may use?
pub fn check(
    auth: &RingAuthKey,
    secret: &Secret,
    identities: &[Identity],
) -> std::result::Result<(), Untrusted> {
    if from_agesecret(secret) {
        return Err(Untrusted::FromAgeSecret);
    }
    let namespace = secret.metadata.namespace.as_deref().unwrap_or_default();
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let annotation = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(AUTH_ANNOTATION))
        .map(String::as_str);
    auth.verify(namespace, name, identities, annotation)
}

/// The `kage-keyring-auth` Secret holding `key`.
pub fn auth_secret(namespace: &str, key: &RingAuthKey) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(AUTH_SECRET.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([(PART_OF_LABEL.into(), "kage".into())])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            AUTH_DATA.into(),
            ByteString(key.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// Read the ring authentication key out of its Secret.
pub fn key_from_secret(secret: &Secret) -> Result<RingAuthKey> {
    if from_agesecret(secret) {
        return Err(Error::KeyRing(format!(
            "Secret {AUTH_SECRET} was written from an AgeSecret; delete it and the AgeSecret, then restart"
        )));
    }
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(AUTH_DATA))
        .and_then(|b| RingAuthKey::from_bytes(&b.0))
        .ok_or_else(|| {
            Error::KeyRing(format!(
                "Secret {AUTH_SECRET} has no 32-byte {AUTH_DATA}; restore it from a backup of the namespace"
            ))
        })
}

/// Get the ring authentication key, creating it (and adopting older key Secrets) when it does
/// not exist yet. Retries API errors with a capped backoff; never gives up.
pub async fn ensure_auth_key(client: &kube::Client, namespace: &str) -> RingAuthKey {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut delay = Duration::from_millis(200);
    loop {
        match get_or_create(&api, namespace).await {
            Ok(key) => return key,
            Err(e @ Error::KeyRing(_)) => error!(error = %e, "ring authentication key"),
            Err(e) => warn!(error = %e, "reading the ring authentication key"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

async fn get_or_create(api: &Api<Secret>, namespace: &str) -> Result<RingAuthKey> {
    if let Some(secret) = api.get_opt(AUTH_SECRET).await? {
        return key_from_secret(&secret);
    }
    let key = RingAuthKey::generate(&mut rand::rngs::OsRng);
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    match api.create(&pp, &auth_secret(namespace, &key)).await {
        Ok(_) => {
            info!("created the ring authentication key {AUTH_SECRET}");
            adopt_unauthenticated(api, &key).await?;
            Ok(key)
        }
        // Another replica (or `kage keys restore`) was first: use theirs.
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let secret = api.get(AUTH_SECRET).await?;
            key_from_secret(&secret)
        }
        Err(e) => Err(Error::Kube(e)),
    }
}

/// Authenticate the key Secrets that predate key authentication (written by an older kage).
async fn adopt_unauthenticated(api: &Api<Secret>, key: &RingAuthKey) -> Result<()> {
    let list = api.list(&ListParams::default().labels(KEY_LABEL)).await?;
    for secret in list.items {
        let Some(patch) = adoption_patch(key, &secret) else {
            continue;
        };
        let name = secret.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        info!(secret = %name, "authenticated a key Secret made before key authentication");
    }
    Ok(())
}

/// The merge patch that authenticates an older key Secret, or `None` when it must not be
/// adopted (written from an AgeSecret, already annotated, or not a readable key Secret).
pub fn adoption_patch(key: &RingAuthKey, secret: &Secret) -> Option<serde_json::Value> {
    if from_agesecret(secret) {
        return None;
    }
    let annotations = secret.metadata.annotations.as_ref();
    if annotations.is_some_and(|a| a.contains_key(AUTH_ANNOTATION)) {
        return None;
    }
    let identities = crate::keystore::identities_of(secret).ok()?;
    let namespace = secret.metadata.namespace.as_deref()?;
    let name = secret.metadata.name.as_deref()?;
    let tag = key.authenticate(namespace, name, &identities);
    Some(serde_json::json!({"metadata": {"annotations": {AUTH_ANNOTATION: tag}}}))
}

/// A key Secret the ring refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Secret name.
    pub name: String,
    /// Its resourceVersion (one event per version).
    pub resource_version: String,
    /// Why.
    pub why: Untrusted,
}

/// Reports refused key Secrets: a Warning event per Secret version, never twice.
pub struct RefusalReporter {
    recorder: Recorder,
    namespace: String,
    reported: BTreeSet<(String, String)>,
}

impl RefusalReporter {
    /// A reporter publishing through `recorder` about Secrets in `namespace`.
    pub fn new(recorder: Recorder, namespace: String) -> RefusalReporter {
        RefusalReporter {
            recorder,
            namespace,
            reported: BTreeSet::new(),
        }
    }

    /// Publish events for the refusals not reported yet; forget the ones that went away.
    pub async fn report(&mut self, refused: &[Refused]) {
        let current: BTreeSet<(String, String)> = refused
            .iter()
            .map(|r| (r.name.clone(), r.resource_version.clone()))
            .collect();
        self.reported.retain(|k| current.contains(k));
        for r in refused {
            let key = (r.name.clone(), r.resource_version.clone());
            if self.reported.contains(&key) {
                continue;
            }
            warn!(secret = %r.name, reason = %r.why, "key Secret not trusted; ignored");
            let event = Event {
                type_: EventType::Warning,
                reason: "UntrustedKeySecret".into(),
                note: Some(format!(
                    "Secret {}/{} is labelled {KEY_LABEL} but {}: it is ignored and never becomes a key",
                    self.namespace, r.name, r.why
                )),
                action: "LoadKeys".into(),
                secondary: None,
            };
            let reference = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Secret".into()),
                name: Some(r.name.clone()),
                namespace: Some(self.namespace.clone()),
                ..ObjectReference::default()
            };
            match self.recorder.publish(&event, &reference).await {
                Ok(()) => {
                    self.reported.insert(key);
                }
                Err(e) => warn!(error = %e, "publishing the untrusted key event"),
            }
        }
    }
}
