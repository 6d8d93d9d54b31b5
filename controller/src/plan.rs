//! The pure reconcile decision: (AgeSecret, key ring, existing Secret) → what to do.
//!
//! No client, no clock (the time is an input), no randomness: every branch is unit-tested.
//! [`crate::reconcile`] only performs the [`Plan`].

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kage_core::api::v1alpha1::{AgeSecret, AgeSecretStatus, CONDITION_READY, Condition};
use kage_core::keys::KeyRing;
use kube::Resource;

use crate::decrypt::{self, Failure, Options};
use crate::secret_rules;
use crate::{FIELD_MANAGER, MANAGED_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// The `Ready` condition's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Every value decrypted; the Secret is up to date.
    Decrypted,
    /// A value could not be decrypted (damaged, MAC mismatch, not sealed to the named key).
    DecryptFailed,
    /// No active key has any of the kids a value names.
    UnknownKey,
    /// A value's binding (scope, namespace, name, key) does not match where it was found.
    ScopeMismatch,
    /// A Secret of that name exists and is not managed by kage.
    SecretNotManaged,
    /// The AgeSecret is malformed, or the Secret it describes breaks a Kubernetes rule.
    InvalidSpec,
    /// The existing Secret cannot take the change (immutable, or a new type): delete it.
    SecretImmutable,
    /// The API server refused the Secret for a reason kage did not foresee.
    SecretRejected,
    /// `spec.suspend` is true.
    Suspended,
}

impl Reason {
    /// The PascalCase reason string.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Decrypted => "Decrypted",
            Reason::DecryptFailed => "DecryptFailed",
            Reason::UnknownKey => "UnknownKey",
            Reason::ScopeMismatch => "ScopeMismatch",
            Reason::SecretNotManaged => "SecretNotManaged",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::SecretImmutable => "SecretImmutable",
            Reason::SecretRejected => "SecretRejected",
            Reason::Suspended => "Suspended",
        }
    }

    /// Fixed metric label (snake case).
    pub fn metric_label(self) -> &'static str {
        match self {
            Reason::Decrypted => "decrypted",
            Reason::DecryptFailed => "decrypt_failed",
            Reason::UnknownKey => "unknown_key",
            Reason::ScopeMismatch => "scope_mismatch",
            Reason::SecretNotManaged => "secret_not_managed",
            Reason::InvalidSpec => "invalid_spec",
            Reason::SecretImmutable => "secret_immutable",
            Reason::SecretRejected => "secret_rejected",
            Reason::Suspended => "suspended",
        }
    }

    /// Every failure reason (what the error metric counts besides [`crate::Error`] labels).
    pub const FAILURES: [Reason; 7] = [
        Reason::DecryptFailed,
        Reason::UnknownKey,
        Reason::ScopeMismatch,
        Reason::SecretNotManaged,
        Reason::InvalidSpec,
        Reason::SecretImmutable,
        Reason::SecretRejected,
    ];

    /// Order in which several failing values are reported: the most actionable first.
    pub(crate) fn priority(self) -> u8 {
        match self {
            Reason::InvalidSpec => 0,
            Reason::ScopeMismatch => 1,
            Reason::UnknownKey => 2,
            Reason::DecryptFailed => 3,
            _ => 4,
        }
    }

    /// Whether a key ring change may fix this failure (such objects are retried at once).
    pub fn key_dependent(self) -> bool {
        matches!(self, Reason::UnknownKey | Reason::DecryptFailed)
    }
}

/// Everything the decision depends on.
pub struct Inputs<'a> {
    /// The AgeSecret as read.
    pub ags: &'a AgeSecret,
    /// Active identities.
    pub ring: &'a KeyRing,
    /// The Secret of the same name, if any.
    pub existing: Option<&'a Secret>,
    /// Controller options.
    pub options: Options,
    /// The controller's own namespace (where the key ring lives).
    pub controller_namespace: &'a str,
    /// The current time (for `lastTransitionTime`).
    pub now: Timestamp,
}

/// What to do with the Secret.
#[derive(Debug, PartialEq)]
pub enum SecretAction {
    /// Leave it exactly as it is (failure, suspension, or a Secret kage does not manage).
    Leave,
    /// It already matches the desired state.
    UpToDate,
    /// Server-side apply this object (field manager [`FIELD_MANAGER`], force), then remove the
    /// listed data keys another field manager left behind.
    Apply {
        /// The complete desired Secret.
        secret: Box<Secret>,
        /// True when no Secret exists yet.
        create: bool,
        /// Data keys present in the existing Secret that the AgeSecret no longer has.
        strip_keys: Vec<String>,
    },
}

/// An event to publish about the AgeSecret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEvent {
    /// Warning (true) or Normal.
    pub warning: bool,
    /// PascalCase reason.
    pub reason: &'static str,
    /// PascalCase action.
    pub action: &'static str,
    /// Message (no secret text).
    pub note: String,
}

/// The decision.
#[derive(Debug)]
pub struct Plan {
    /// What to do with the Secret.
    pub secret: SecretAction,
    /// The status to write.
    pub status: AgeSecretStatus,
    /// Whether `status` differs from the current one (no write otherwise).
    pub status_changed: bool,
    /// Events to publish.
    pub events: Vec<PlannedEvent>,
    /// The outcome.
    pub reason: Reason,
    /// How many values were decrypted (0 unless Ready).
    pub decrypted_values: usize,
}

impl Plan {
    /// True when the AgeSecret is Ready.
    pub fn ready(&self) -> bool {
        self.reason == Reason::Decrypted
    }
}

/// What [`decide`] found: the action, the Ready message and the number of values, or why not.
pub type Outcome = Result<(SecretAction, String, usize), Failure>;

/// Decide what to do. See the module docs.
pub fn plan(inputs: &Inputs<'_>) -> Plan {
    finish(inputs.ags, inputs.now, decide(inputs))
}

/// The status, events and action for an outcome (also for a write the API server refused).
pub fn finish(ags: &AgeSecret, now: Timestamp, outcome: Outcome) -> Plan {
    let generation = ags.metadata.generation;
    let key_ids = decrypt::kids(ags);
    let old_status = ags.status.clone().unwrap_or_default();
    let name = ags.metadata.name.clone().unwrap_or_default();

    let (reason, message, secret_action, decrypted_values) = match outcome {
        Ok((action, message, n)) => (Reason::Decrypted, message, action, n),
        Err(f) => (f.reason, f.message, SecretAction::Leave, 0),
    };
    let ready = reason == Reason::Decrypted;

    let condition = next_condition(
        old_status.condition(CONDITION_READY),
        ready,
        reason,
        &message,
        generation,
        now,
    );
    let secret_name = match reason {
        Reason::Decrypted => Some(name),
        Reason::SecretNotManaged => None,
        _ => old_status.secret_name.clone(),
    };
    let mut conditions: Vec<Condition> = old_status
        .conditions
        .iter()
        .filter(|c| c.type_ != CONDITION_READY)
        .cloned()
        .collect();
    conditions.push(condition);
    let status = AgeSecretStatus {
        observed_generation: generation,
        conditions,
        secret_name,
        key_ids,
    };
    let status_changed = ags.status.as_ref() != Some(&status);

    let old_ready = old_status.condition(CONDITION_READY);
    let transition = old_ready.map(|c| (c.status.as_str(), c.reason.as_str()))
        != Some((if ready { "True" } else { "False" }, reason.as_str()));
    let mut events = Vec::new();
    match &secret_action {
        SecretAction::Apply { create, .. } => events.push(PlannedEvent {
            warning: false,
            reason: if *create {
                "SecretCreated"
            } else {
                "SecretUpdated"
            },
            action: "Apply",
            note: message.clone(),
        }),
        SecretAction::UpToDate if transition => events.push(PlannedEvent {
            warning: false,
            reason: Reason::Decrypted.as_str(),
            action: "Reconcile",
            note: message.clone(),
        }),
        _ if transition && !ready => events.push(PlannedEvent {
            warning: reason != Reason::Suspended,
            reason: reason.as_str(),
            action: "Reconcile",
            note: message.clone(),
        }),
        _ => {}
    }

    Plan {
        secret: secret_action,
        status,
        status_changed,
        events,
        reason,
        decrypted_values,
    }
}

/// The Ready condition, keeping `lastTransitionTime` while the status does not change.
fn next_condition(
    old: Option<&Condition>,
    ready: bool,
    reason: Reason,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if ready { "True" } else { "False" };
    let last_transition_time = match old {
        Some(c) if c.status == status && c.last_transition_time.is_some() => {
            c.last_transition_time.clone()
        }
        _ => Some(now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
    };
    Condition {
        type_: CONDITION_READY.to_string(),
        status: status.to_string(),
        reason: reason.as_str().to_string(),
        message: message.to_string(),
        last_transition_time,
        observed_generation: generation,
    }
}

fn decide(inputs: &Inputs<'_>) -> Outcome {
    let ags = inputs.ags;
    if ags.body().suspend {
        return Err(Failure::new(
            Reason::Suspended,
            "spec.suspend is true: the Secret is left as it is",
        ));
    }
    decrypt::validate(ags)?;
    crate::guard::check(ags, inputs.controller_namespace)?;
    let uid = ags
        .metadata
        .uid
        .as_deref()
        .ok_or_else(|| Failure::new(Reason::InvalidSpec, "metadata.uid is missing"))?;
    if let Some(existing) = inputs.existing
        && !is_managed(existing, uid)
    {
        return Err(Failure::new(
            Reason::SecretNotManaged,
            format!(
                "Secret {:?} exists and is not managed by kage; annotate it {MANAGED_ANNOTATION}=\"true\" to hand it over",
                existing.metadata.name.as_deref().unwrap_or_default()
            ),
        ));
    }
    let values = decrypt::open(ags, inputs.ring, inputs.options)?;
    let n = values.len();
    let desired = desired_secret(ags, values);
    // Kubernetes' own rules before writing: a Secret the API server would refuse is reported
    // now, and the existing one is left as it is.
    if !inputs
        .existing
        .is_some_and(|e| up_to_date(e, &desired, uid))
        && let Err(f) = secret_rules::check(&desired, inputs.existing)
    {
        secret_rules::wipe(desired);
        return Err(f);
    }
    let message = format!("{n} value{} decrypted", if n == 1 { "" } else { "s" });
    match inputs.existing {
        None => Ok((
            SecretAction::Apply {
                secret: Box::new(desired),
                create: true,
                strip_keys: Vec::new(),
            },
            message,
            n,
        )),
        Some(existing) if up_to_date(existing, &desired, uid) => {
            Ok((SecretAction::UpToDate, message, n))
        }
        Some(existing) => {
            let desired_keys = desired.data.as_ref();
            let strip_keys = existing
                .data
                .iter()
                .flatten()
                .map(|(k, _)| k)
                .chain(existing.string_data.iter().flatten().map(|(k, _)| k))
                .filter(|k| desired_keys.is_none_or(|d| !d.contains_key(*k)))
                .cloned()
                .collect();
            Ok((
                SecretAction::Apply {
                    secret: Box::new(desired),
                    create: false,
                    strip_keys,
                },
                message,
                n,
            ))
        }
    }
}

/// Does kage manage this Secret for the AgeSecret with this uid?
pub fn is_managed(secret: &Secret, ags_uid: &str) -> bool {
    let annotated = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(MANAGED_ANNOTATION))
        .is_some_and(|v| v == "true");
    let owned = secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == ags_uid);
    annotated || owned
}

/// The Secret exactly as DESIGN §5 describes it.
pub fn desired_secret(ags: &AgeSecret, values: decrypt::Values) -> Secret {
    let spec = ags.body();
    let template = &spec.template;
    let mut labels = template.metadata.labels.clone();
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    let mut annotations = template.metadata.annotations.clone();
    annotations.insert(MANAGED_ANNOTATION.into(), "true".into());
    let mut data: BTreeMap<String, ByteString> = template
        .data
        .iter()
        .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
        .collect();
    for (k, mut v) in values {
        // Moved, not copied: `ByteString` has no zeroizing drop, and the body is short-lived.
        data.insert(k, ByteString(std::mem::take(&mut *v)));
    }
    let owner_references = if template.skip_owner_reference {
        None
    } else {
        ags.metadata.uid.as_ref().map(|uid| {
            vec![OwnerReference {
                api_version: AgeSecret::api_version(&()).into_owned(),
                kind: AgeSecret::kind(&()).into_owned(),
                name: ags.metadata.name.clone().unwrap_or_default(),
                uid: uid.clone(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]
        })
    };
    Secret {
        metadata: ObjectMeta {
            name: ags.metadata.name.clone(),
            namespace: ags.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references,
            ..ObjectMeta::default()
        },
        type_: Some(template.type_.clone().unwrap_or_else(|| "Opaque".into())),
        immutable: template.immutable,
        data: Some(data),
        string_data: None,
    }
}

/// Does the existing Secret already match the desired one (so no write is needed)?
///
/// Data must be identical (same keys, same bytes); desired labels and annotations present with
/// the same values, and none that kage applied earlier but no longer wants (read from the
/// `managedFields` of [`FIELD_MANAGER`]); the ownerReference present exactly when wanted.
pub fn up_to_date(existing: &Secret, desired: &Secret, uid: &str) -> bool {
    let existing_type = existing.type_.as_deref().unwrap_or("Opaque");
    if Some(existing_type) != desired.type_.as_deref() {
        return false;
    }
    if desired.immutable.unwrap_or(false) != existing.immutable.unwrap_or(false) {
        return false;
    }
    if existing.string_data.as_ref().is_some_and(|s| !s.is_empty()) {
        return false;
    }
    let empty = BTreeMap::new();
    if existing.data.as_ref().unwrap_or(&empty) != desired.data.as_ref().unwrap_or(&empty) {
        return false;
    }
    for (field, want, have) in [
        (
            "f:labels",
            desired.metadata.labels.as_ref(),
            existing.metadata.labels.as_ref(),
        ),
        (
            "f:annotations",
            desired.metadata.annotations.as_ref(),
            existing.metadata.annotations.as_ref(),
        ),
    ] {
        let no_strings = BTreeMap::new();
        let want = want.unwrap_or(&no_strings);
        let have = have.unwrap_or(&no_strings);
        if want.iter().any(|(k, v)| have.get(k) != Some(v)) {
            return false;
        }
        if applied_metadata_keys(existing, field)
            .iter()
            .any(|k| !want.contains_key(k))
        {
            return false;
        }
    }
    let has_owner_ref = existing
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.controller == Some(true));
    let wants_owner_ref = desired.metadata.owner_references.is_some();
    has_owner_ref == wants_owner_ref
}

/// Keys under `metadata.<field>` that [`FIELD_MANAGER`] owns through server-side apply.
fn applied_metadata_keys(secret: &Secret, field: &str) -> Vec<String> {
    secret
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.manager.as_deref() == Some(FIELD_MANAGER) && m.operation.as_deref() == Some("Apply")
        })
        .filter_map(|m| m.fields_v1.as_ref())
        .filter_map(|f| f.0.get("f:metadata")?.get(field)?.as_object())
        .flat_map(|o| {
            o.keys()
                .filter_map(|k| k.strip_prefix("f:"))
                .map(String::from)
        })
        .collect()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
