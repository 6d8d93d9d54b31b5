//! Unit tests of the pure reconcile decision: one test (at least) per branch.

use super::*;
use crate::fixtures::{AgeSecretFixture, TestKeys, owner_ref, secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use kage_core::api::v1alpha1::Scope;
use kage_core::keys::Identity;
use kage_core::sealed::{self, Binding};

const PLAIN: &[u8] = b"s3cr3t-plaintext-value";
const NOW: &str = "2026-11-28T10:00:00Z";

const CONTROLLER_NAMESPACE: &str = "kage-system";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn run(ags: &AgeSecret, ring: &KeyRing, existing: Option<&Secret>) -> Plan {
    run_opts(ags, ring, existing, Options::default())
}

fn run_opts(ags: &AgeSecret, ring: &KeyRing, existing: Option<&Secret>, options: Options) -> Plan {
    let p = plan(&Inputs {
        ags,
        ring,
        existing,
        options,
        controller_namespace: CONTROLLER_NAMESPACE,
        now: now(),
    });
    assert_no_plaintext(&p);
    p
}

/// No plaintext in status, events or messages, whatever the branch.
fn assert_no_plaintext(p: &Plan) {
    let needle = std::str::from_utf8(PLAIN).unwrap();
    let status = serde_json::to_string(&p.status).unwrap();
    assert!(!status.contains(needle), "plaintext in status");
    for e in &p.events {
        assert!(!e.note.contains(needle), "plaintext in event");
    }
}

fn ready(p: &Plan) -> &Condition {
    p.status
        .condition(CONDITION_READY)
        .expect("Ready condition")
}

fn applied(p: &Plan) -> (&Secret, bool, &[String]) {
    match &p.secret {
        SecretAction::Apply {
            secret,
            create,
            strip_keys,
        } => (secret, *create, strip_keys),
        other => panic!("expected Apply, got {other:?}"),
    }
}

fn owned(data: &[(&str, &[u8])]) -> Secret {
    secret(data, |m| {
        m.owner_references = Some(vec![owner_ref()]);
        m.labels = Some([(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into())].into());
        m.annotations = Some([(MANAGED_ANNOTATION.into(), "true".into())].into());
    })
}

// ---- happy path and the desired Secret ----

#[test]
fn creates_secret_when_none_exists() {
    let k = TestKeys::new();
    let ags = AgeSecret::test()
        .sealed("password", PLAIN, &k.id)
        .sealed("user", b"admin", &k.id);
    let p = run(&ags, &k.ring, None);
    assert!(p.ready());
    assert_eq!(p.reason, Reason::Decrypted);
    assert_eq!(p.decrypted_values, 2);
    let (s, create, strip) = applied(&p);
    assert!(create);
    assert!(strip.is_empty());
    let data = s.data.as_ref().unwrap();
    assert_eq!(data["password"].0, PLAIN);
    assert_eq!(data["user"].0, b"admin");
    assert_eq!(s.metadata.name.as_deref(), Some("db"));
    assert_eq!(s.metadata.namespace.as_deref(), Some("prod"));
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    assert_eq!(s.immutable, None);
    assert_eq!(
        s.metadata.labels.as_ref().unwrap()[MANAGED_BY_LABEL],
        MANAGED_BY_VALUE
    );
    assert_eq!(
        s.metadata.annotations.as_ref().unwrap()[MANAGED_ANNOTATION],
        "true"
    );
    let refs = s.metadata.owner_references.as_ref().unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0], owner_ref());

    let c = ready(&p);
    assert_eq!(c.status, "True");
    assert_eq!(c.reason, "Decrypted");
    assert_eq!(c.message, "2 values decrypted");
    assert_eq!(c.last_transition_time.as_deref(), Some(NOW));
    assert_eq!(c.observed_generation, Some(1));
    assert_eq!(p.status.observed_generation, Some(1));
    assert_eq!(p.status.secret_name.as_deref(), Some("db"));
    assert_eq!(p.status.key_ids, vec![k.id.kid().to_string()]);
    assert!(p.status_changed);
    assert_eq!(p.events.len(), 1);
    assert_eq!(p.events[0].reason, "SecretCreated");
    assert!(!p.events[0].warning);
}

#[test]
fn template_shapes_the_secret() {
    let k = TestKeys::new();
    let ags = AgeSecret::test()
        .sealed("tls.key", PLAIN, &k.id)
        .edit_spec(|s| {
            s.template.type_ = Some("kubernetes.io/tls".into());
            s.template.immutable = Some(true);
            s.template
                .metadata
                .labels
                .insert("app".into(), "web".into());
            s.template
                .metadata
                .annotations
                .insert("note".into(), "x".into());
            s.template.data.insert("tls.crt".into(), "CERT".into());
        });
    let p = run(&ags, &k.ring, None);
    let (s, _, _) = applied(&p);
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(s.immutable, Some(true));
    assert_eq!(s.metadata.labels.as_ref().unwrap()["app"], "web");
    assert_eq!(s.metadata.annotations.as_ref().unwrap()["note"], "x");
    let data = s.data.as_ref().unwrap();
    assert_eq!(data["tls.crt"].0, b"CERT", "template.data is clear text");
    assert_eq!(data["tls.key"].0, PLAIN);
}

#[test]
fn skip_owner_reference() {
    let k = TestKeys::new();
    let ags = AgeSecret::test()
        .sealed("a", PLAIN, &k.id)
        .edit_spec(|s| s.template.skip_owner_reference = true);
    let p = run(&ags, &k.ring, None);
    let (s, _, _) = applied(&p);
    assert!(s.metadata.owner_references.is_none());
    // Still recognisable as managed without the ownerReference.
    assert!(is_managed(s, "another-uid"));
    // An existing Secret that still has the ownerReference must be re-applied to drop it.
    let mut existing = s.clone();
    existing.metadata.owner_references = Some(vec![owner_ref()]);
    let p = run(&ags, &k.ring, Some(&existing));
    applied(&p);
    // Without it, it is up to date.
    let p = run(&ags, &k.ring, Some(s));
    assert_eq!(p.secret, SecretAction::UpToDate);
}

#[test]
fn empty_agesecret_with_template_data_only() {
    let k = TestKeys::new();
    let ags = AgeSecret::test().edit_spec(|s| {
        s.template.data.insert("config".into(), "x=1".into());
    });
    let p = run(&ags, &k.ring, None);
    assert!(p.ready());
    assert_eq!(ready(&p).message, "0 values decrypted");
    assert_eq!(applied(&p).0.data.as_ref().unwrap()["config"].0, b"x=1");
}

#[test]
fn up_to_date_secret_is_not_written() {
    let k = TestKeys::new();
    let ags = AgeSecret::test().sealed("password", PLAIN, &k.id);
    let first = run(&ags, &k.ring, None);
    let (desired, _, _) = applied(&first);
    let mut existing = desired.clone();
    existing.metadata.resource_version = Some("7".into());
    let ags = ags.with_status(first.status.clone());
    let p = run(&ags, &k.ring, Some(&existing));
    assert_eq!(p.secret, SecretAction::UpToDate);
    assert!(!p.status_changed, "no status write when nothing changed");
    assert!(p.events.is_empty(), "no event when nothing changed");
    assert!(p.ready());
}

#[test]
fn up_to_date_but_status_stale_writes_status_and_reports_decrypted() {
    let k = TestKeys::new();
    let ags = AgeSecret::test().sealed("password", PLAIN, &k.id);
    let first = run(&ags, &k.ring, None);
    let existing = applied(&first).0.clone();
    let p = run(&ags, &k.ring, Some(&existing));
    assert_eq!(p.secret, SecretAction::UpToDate);
    assert!(p.status_changed);
    assert_eq!(p.events.len(), 1);
    assert_eq!(p.events[0].reason, "Decrypted");
}

#[test]
fn drifted_value_is_restored_and_foreign_keys_stripped() {
    let k = TestKeys::new();
    let ags = AgeSecret::test().sealed("password", PLAIN, &k.id);
    let existing = owned(&[("password", b"edited"), ("extra", b"added by hand")]);
    let p = run(&ags, &k.ring, Some(&existing));
    let (s, create, strip) = applied(&p);
    assert!(!create);
    assert_eq!(strip, ["extra".to_string()]);
    assert_eq!(s.data.as_ref().unwrap()["password"].0, PLAIN);
    assert_eq!(p.events[0].reason, "SecretUpdated");
}

#[test]
fn removed_value_disappears() {
    let k = TestKeys::new();
    let ags = AgeSecret::test().sealed("a", PLAIN, &k.id);
    let existing = owned(&[("a", PLAIN), ("b", b"old")]);
    let p = run(&ags, &k.ring, Some(&existing));
    let (s, _, strip) = applied(&p);
    assert_eq!(strip, ["b".to_string()]);
    assert!(!s.data.as_ref().unwrap().contains_key("b"));
}

#[test]
fn label_removed_from_template_is_reapplied() {
    let k = TestKeys::new();
    let ags = AgeSecret::test().sealed("a", PLAIN, &k.id);
    let first = run(&ags, &k.ring, None);
    let mut existing = applied(&first).0.clone();
    existing
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("gone".into(), "1".into());
    // A label someone else set is fine…
    assert_eq!(
        run(&ags, &k.ring, Some(&existing)).secret,
        SecretAction::UpToDate
    );
    // …but one kage applied earlier and no longer wants needs an apply to remove it.
    existing.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
        manager: Some(FIELD_MANAGER.into()),
        operation: Some("Apply".into()),
        fields_v1: Some(FieldsV1(serde_json::json!({
            "f:metadata": {"f:labels": {"f:gone": {}, "f:app.kubernetes.io/managed-by": {}}}
        }))),
        ..ManagedFieldsEntry::default()
    }]);
    applied(&run(&ags, &k.ring, Some(&existing)));
}

#[test]
fn type_or_immutable_changes_follow_the_update_rules() {
    let k = TestKeys::new();
    let ags = AgeSecret::test().sealed("a", PLAIN, &k.id);
    let first = run(&ags, &k.ring, None);
    let desired = applied(&first).0.clone();
    // The API server never lets a Secret's type change, nor an immutable Secret become
    // mutable (ValidateSecretUpdate): refused before writing, not applied.
    let mut e = desired.clone();
    e.type_ = Some("kubernetes.io/basic-auth".into());
    assert_eq!(run(&ags, &k.ring, Some(&e)).reason, Reason::SecretImmutable);
    let mut e = desired.clone();
    e.immutable = Some(true);
    assert_eq!(run(&ags, &k.ring, Some(&e)).reason, Reason::SecretImmutable);
    // Becoming immutable is allowed.
    let frozen = ags.clone().edit_spec(|s| s.template.immutable = Some(true));
    applied(&run(&frozen, &k.ring, Some(&desired)));
    let mut e = desired.clone();
    e.type_ = None; // absent type means Opaque
    assert_eq!(run(&ags, &k.ring, Some(&e)).secret, SecretAction::UpToDate);
    let mut e = desired;
    e.string_data = Some([("x".to_string(), "y".to_string())].into());
    applied(&run(&ags, &k.ring, Some(&e)));
}

// ---- never clobber ----

#[test]
fn foreign_secret_is_left_alone() {
    let k = TestKeys::new();
    let ags = AgeSecret::test().sealed("a", PLAIN, &k.id);
    let existing = secret(&[("a", b"theirs")], |_| {});
    let p = run(&ags, &k.ring, Some(&existing));
    assert_eq!(p.secret, SecretAction::Leave);
    assert_eq!(p.reason, Reason::SecretNotManaged);
    let c = ready(&p);
    assert_eq!(c.status, "False");
    assert!(c.message.contains("kage.dev/managed"));
    assert_eq!(p.status.secret_name, None);
    assert!(p.events[0].warning);
    assert_eq!(p.events[0].reason, "SecretNotManaged");
}

#[test]
fn secret_owned_by_another_object_is_not_managed() {
    let k = TestKeys::new();
    let ags = AgeSecret::test().sealed("a", PLAIN, &k.id);
    let mut other = owner_ref();
    other.uid = "someone-else".into();
    let existing = secret(&[("a", b"theirs")], |m| {
        m.owner_references = Some(vec![other])
    });
    assert_eq!(
        run(&ags, &k.ring, Some(&existing)).reason,
        Reason::SecretNotManaged
    );
    // The managed-by label alone does not hand a Secret over either.
    let labelled = secret(&[], |m| {
        m.labels = Some([(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into())].into())
    });
    assert_eq!(
        run(&ags, &k.ring, Some(&labelled)).reason,
        Reason::SecretNotManaged
    );
}

#[test]
fn annotated_secret_is_adopted() {
    let k = TestKeys::new();
    let ags = AgeSecret::test().sealed("a", PLAIN, &k.id);
    let existing = secret(&[("a", b"theirs")], |m| {
        m.annotations = Some([(MANAGED_ANNOTATION.into(), "true".into())].into())
    });
    let p = run(&ags, &k.ring, Some(&existing));
    let (s, create, _) = applied(&p);
    assert!(!create);
    assert_eq!(s.data.as_ref().unwrap()["a"].0, PLAIN);
    // Any other annotation value does not count.
    let existing = secret(&[], |m| {
        m.annotations = Some([(MANAGED_ANNOTATION.into(), "yes".into())].into())
    });
    assert_eq!(
        run(&ags, &k.ring, Some(&existing)).reason,
        Reason::SecretNotManaged
    );
}

// ---- decryption failures leave the Secret as it was ----

#[test]
fn unknown_key() {
    let k = TestKeys::new();
    let other = Identity::generate();
    let ags = AgeSecret::test().sealed("a", PLAIN, &other);
    let existing = owned(&[("a", b"previous")]);
    let p = run(&ags, &k.ring, Some(&existing));
    assert_eq!(p.reason, Reason::UnknownKey);
    assert_eq!(p.decrypted_values, 0);
    assert_eq!(p.secret, SecretAction::Leave);
    let c = ready(&p);
    assert_eq!(c.status, "False");
    assert_eq!(c.reason, "UnknownKey");
    assert!(c.message.contains(other.kid().as_str()), "{}", c.message);
    assert!(c.message.starts_with("1 of 1 values failed: a: "));
    assert_eq!(p.status.key_ids, vec![other.kid().to_string()]);
    assert!(p.events[0].warning);
    assert!(Reason::UnknownKey.key_dependent());
}

#[test]
fn tampered_value_is_decrypt_failed() {
    let k = TestKeys::new();
    let good = sealed::seal(
        PLAIN,
        &Binding::new(sealed::Scope::Strict, "prod", "db", "a"),
        &[k.id.recipient()],
    )
    .unwrap();
    // Flip a character inside the base64 ciphertext payload, keeping it valid base64.
    let mut bytes = good.into_bytes();
    let i = bytes.len() - 10;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    let ags = AgeSecret::test().raw_value("a", &tampered);
    let p = run(&ags, &k.ring, None);
    assert_eq!(p.reason, Reason::DecryptFailed);
    assert_eq!(p.secret, SecretAction::Leave);
}

#[test]
fn malformed_value_is_decrypt_failed() {
    let k = TestKeys::new();
    let ags = AgeSecret::test().raw_value("a", "kage:v1:zz:!!!");
    let p = run(&ags, &k.ring, None);
    assert!(
        matches!(p.reason, Reason::DecryptFailed | Reason::InvalidSpec),
        "{:?}",
        p.reason
    );
    assert_eq!(p.secret, SecretAction::Leave);
    assert!(p.status.key_ids.is_empty());
}

#[test]
fn value_copied_to_another_name_is_scope_mismatch() {
    let k = TestKeys::new();
    let elsewhere = Binding::new(sealed::Scope::Strict, "prod", "other", "a");
    let ags = AgeSecret::test().sealed_for("a", PLAIN, &elsewhere, &k.id);
    let p = run(&ags, &k.ring, None);
    assert_eq!(p.reason, Reason::ScopeMismatch);
    assert!(ready(&p).message.contains("prod/other"));
}

#[test]
fn value_copied_to_another_key_or_namespace_is_scope_mismatch() {
    let k = TestKeys::new();
    let other_key = Binding::new(sealed::Scope::Strict, "prod", "db", "b");
    let p = run(
        &AgeSecret::test().sealed_for("a", PLAIN, &other_key, &k.id),
        &k.ring,
        None,
    );
    assert_eq!(p.reason, Reason::ScopeMismatch);
    let other_ns = Binding::new(sealed::Scope::Namespace, "dev", "", "a");
    let p = run(
        &AgeSecret::test()
            .with_scope(Scope::Namespace)
            .sealed_for("a", PLAIN, &other_ns, &k.id),
        &k.ring,
        None,
    );
    assert_eq!(p.reason, Reason::ScopeMismatch);
}

#[test]
fn widening_the_clear_scope_is_scope_mismatch() {
    let k = TestKeys::new();
    // Sealed strict, then someone edits spec.scope to cluster.
    let ags = AgeSecret::test()
        .sealed("a", PLAIN, &k.id)
        .with_scope(Scope::Cluster);
    assert_eq!(run(&ags, &k.ring, None).reason, Reason::ScopeMismatch);
}

#[test]
fn namespace_and_cluster_scopes_decrypt_elsewhere() {
    let k = TestKeys::new();
    let ags = AgeSecret::test().with_scope(Scope::Namespace).sealed_for(
        "a",
        PLAIN,
        &Binding::new(sealed::Scope::Namespace, "prod", "ignored", "a"),
        &k.id,
    );
    assert!(run(&ags, &k.ring, None).ready());
    let ags = AgeSecret::test().with_scope(Scope::Cluster).sealed_for(
        "a",
        PLAIN,
        &Binding::new(sealed::Scope::Cluster, "any", "any", "a"),
        &k.id,
    );
    assert!(run(&ags, &k.ring, None).ready());
}

#[test]
fn several_failures_report_the_most_actionable() {
    let k = TestKeys::new();
    let other = Identity::generate();
    let wrong_place = Binding::new(sealed::Scope::Strict, "prod", "x", "b");
    let ags = AgeSecret::test()
        .sealed("a", PLAIN, &other)
        .sealed_for("b", PLAIN, &wrong_place, &k.id)
        .sealed("c", PLAIN, &k.id);
    let p = run(&ags, &k.ring, None);
    assert_eq!(p.reason, Reason::ScopeMismatch);
    let m = &ready(&p).message;
    assert!(m.starts_with("2 of 3 values failed: "), "{m}");
    assert!(m.contains("a: ") && m.contains("b: "));
    assert_eq!(
        p.secret,
        SecretAction::Leave,
        "partial success writes nothing"
    );
}

#[test]
fn retired_key_no_longer_decrypts() {
    // The ring passed in holds active keys only: a value sealed to a retired key is UnknownKey.
    let retired = Identity::generate();
    let ags = AgeSecret::test().sealed("a", PLAIN, &retired);
    let p = run(&ags, &KeyRing::new(), None);
    assert_eq!(p.reason, Reason::UnknownKey);
}

// ---- invalid specs ----

#[test]
fn invalid_specs() {
    let k = TestKeys::new();
    let cases: Vec<(AgeSecret, &str)> = vec![
        (
            AgeSecret::test().edit_spec(|s| {
                s.data.insert("a".into(), "ENC[...]".into());
            }),
            "need a top-level sops block",
        ),
        (
            AgeSecret::test()
                .sops(&[("a", PLAIN)], &[], None, &k.id)
                .raw_value("b", "kage:v1:00:AA"),
            "cannot be combined",
        ),
        (
            AgeSecret::test().raw_value("bad/key", "kage:v1:00:AA"),
            "not a valid Secret data key",
        ),
        (
            AgeSecret::test().sealed("a", PLAIN, &k.id).edit_spec(|s| {
                s.template.data.insert("a".into(), "clear".into());
            }),
            "also an encrypted value",
        ),
        (
            AgeSecret::test().edit_spec(|s| {
                s.template.data.insert("".into(), "clear".into());
            }),
            "not a valid Secret data key",
        ),
    ];
    for (ags, needle) in cases {
        let p = run(&ags, &k.ring, None);
        assert_eq!(p.reason, Reason::InvalidSpec, "{needle}");
        assert!(ready(&p).message.contains(needle), "{}", ready(&p).message);
        assert_eq!(p.secret, SecretAction::Leave);
        assert!(!Reason::InvalidSpec.key_dependent());
    }
    let mut no_uid = AgeSecret::test().sealed("a", PLAIN, &k.id);
    no_uid.metadata.uid = None;
    assert_eq!(run(&no_uid, &k.ring, None).reason, Reason::InvalidSpec);
}

/// Kubernetes' `IsConfigMapKey` (kage-core's mirror): `..x` is refused at once, before any
/// decryption, naming the field, the key and the rule.
#[test]
fn data_key_names_follow_kubernetes() {
    let k = TestKeys::new();
    for (ags, needle) in [
        (
            AgeSecret::test().sealed("..x", PLAIN, &k.id),
            "spec.encryptedData: \"..x\" is not a valid Secret data key: must not start with '..'",
        ),
        (
            AgeSecret::test().edit_spec(|s| {
                s.template.data.insert("..".into(), "clear".into());
            }),
            "spec.template.data: \"..\" is not a valid Secret data key: must not be '..'",
        ),
        (
            AgeSecret::test().raw_value(&"a".repeat(254), "kage:v1:00:AA"),
            "must be no more than 253 characters",
        ),
    ] {
        let p = run(&ags, &k.ring, None);
        assert_eq!(p.reason, Reason::InvalidSpec, "{needle}");
        assert!(ready(&p).message.contains(needle), "{}", ready(&p).message);
        assert!(ready(&p).message.contains("IsConfigMapKey"));
        assert_eq!(p.secret, SecretAction::Leave);
    }
    for good in ["a-b_c.d", ".dockerconfigjson", "a..b"] {
        let ags = AgeSecret::test().sealed(good, PLAIN, &k.id);
        assert!(run(&ags, &k.ring, None).ready(), "{good}");
    }
}

/// The desired Secret is checked with `ValidateSecret` before any write; the existing Secret
/// with `ValidateSecretUpdate`.
#[test]
fn secrets_the_api_server_would_refuse_are_not_written() {
    let k = TestKeys::new();
    let tls = AgeSecret::test()
        .sealed("tls.key", PLAIN, &k.id)
        .edit_spec(|s| s.template.type_ = Some("kubernetes.io/tls".into()));
    let existing = owned(&[("tls.key", b"old")]);
    let p = run(&tls, &k.ring, Some(&existing));
    assert_eq!(p.reason, Reason::InvalidSpec);
    assert!(ready(&p).message.contains("data[tls.crt]: Required value"));
    assert_eq!(p.secret, SecretAction::Leave);

    // Over 1 MiB of values, template data included.
    let big = AgeSecret::test().sealed("a", PLAIN, &k.id).edit_spec(|s| {
        s.template
            .data
            .insert("blob".into(), "x".repeat(kage_core::k8s::MAX_SECRET_SIZE));
    });
    let p = run(&big, &k.ring, None);
    assert_eq!(p.reason, Reason::InvalidSpec);
    assert!(
        ready(&p).message.contains("data: Too long"),
        "{}",
        ready(&p).message
    );

    // An immutable Secret whose values would change: SecretImmutable, with the way out.
    let ags = AgeSecret::test()
        .sealed("a", PLAIN, &k.id)
        .edit_spec(|s| s.template.immutable = Some(true));
    let mut frozen = owned(&[("a", b"old")]);
    frozen.immutable = Some(true);
    let p = run(&ags, &k.ring, Some(&frozen));
    assert_eq!(p.reason, Reason::SecretImmutable);
    assert_eq!(ready(&p).status, "False");
    assert_eq!(ready(&p).observed_generation, ags.metadata.generation);
    assert!(
        ready(&p).message.contains("delete secret db"),
        "{}",
        ready(&p).message
    );
    assert_eq!(p.secret, SecretAction::Leave);
    assert!(p.events[0].warning);
    // Same values: up to date, nothing refused.
    let mut same = owned(&[("a", PLAIN)]);
    same.immutable = Some(true);
    same.metadata.labels = Some([(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into())].into());
    assert!(run(&ags, &k.ring, Some(&same)).ready());

    // A new type for an existing Secret is never allowed.
    let retyped = AgeSecret::test()
        .sealed("username", PLAIN, &k.id)
        .edit_spec(|s| s.template.type_ = Some("kubernetes.io/basic-auth".into()));
    let p = run(&retyped, &k.ring, Some(&owned(&[("username", b"old")])));
    assert_eq!(p.reason, Reason::SecretImmutable);
    assert!(ready(&p).message.contains("cannot change its type"));
}

// ---- suspend ----

#[test]
fn suspended_leaves_everything() {
    let k = TestKeys::new();
    let ags = AgeSecret::test().sealed("a", PLAIN, &k.id).suspended();
    let existing = owned(&[("a", b"old")]);
    let p = run(&ags, &k.ring, Some(&existing));
    assert_eq!(p.reason, Reason::Suspended);
    assert_eq!(p.secret, SecretAction::Leave);
    assert_eq!(ready(&p).status, "False");
    assert_eq!(p.events.len(), 1);
    assert!(!p.events[0].warning, "suspension is not a warning");
    // Once reported, no further event.
    let again = ags.clone().with_status(p.status.clone());
    let p2 = run(&again, &k.ring, Some(&existing));
    assert!(p2.events.is_empty());
    assert!(!p2.status_changed);
}

// ---- status bookkeeping ----

#[test]
fn last_transition_time_changes_only_with_status() {
    let k = TestKeys::new();
    let old_time = "2026-01-01T00:00:00Z";
    let mut status = AgeSecretStatus::default();
    status.conditions.push(Condition {
        type_: CONDITION_READY.into(),
        status: "False".into(),
        reason: "UnknownKey".into(),
        message: "old".into(),
        last_transition_time: Some(old_time.into()),
        observed_generation: Some(1),
    });
    let other = Identity::generate();
    // Still failing (another reason): time kept, reason and message updated, event emitted.
    let ags = AgeSecret::test()
        .raw_value("a", "kage:v1:zz:!!!")
        .with_status(status.clone());
    let p = run(&ags, &k.ring, None);
    assert_eq!(ready(&p).last_transition_time.as_deref(), Some(old_time));
    assert_ne!(ready(&p).reason, "UnknownKey");
    assert_eq!(p.events.len(), 1);
    // Same failure again: no event.
    let ags = AgeSecret::test()
        .sealed("a", PLAIN, &other)
        .with_status(status.clone());
    let p = run(&ags, &k.ring, None);
    assert_eq!(ready(&p).last_transition_time.as_deref(), Some(old_time));
    assert!(p.events.is_empty());
    assert!(p.status_changed, "message changed");
    // Now it decrypts: time moves.
    let ags = AgeSecret::test()
        .sealed("a", PLAIN, &k.id)
        .with_status(status);
    let p = run(&ags, &k.ring, None);
    assert_eq!(ready(&p).last_transition_time.as_deref(), Some(NOW));
}

#[test]
fn observed_generation_and_other_conditions_kept() {
    let k = TestKeys::new();
    let mut status = AgeSecretStatus::default();
    status.conditions.push(Condition {
        type_: "Other".into(),
        status: "True".into(),
        ..Condition::default()
    });
    let ags = AgeSecret::test()
        .sealed("a", PLAIN, &k.id)
        .with_generation(5)
        .with_status(status);
    let p = run(&ags, &k.ring, None);
    assert_eq!(p.status.observed_generation, Some(5));
    assert_eq!(ready(&p).observed_generation, Some(5));
    assert!(p.status.condition("Other").is_some());
}

#[test]
fn failure_keeps_previous_secret_name() {
    let k = TestKeys::new();
    let status = AgeSecretStatus {
        secret_name: Some("db".into()),
        ..AgeSecretStatus::default()
    };
    let ags = AgeSecret::test()
        .sealed("a", PLAIN, &Identity::generate())
        .with_status(status);
    assert_eq!(
        run(&ags, &k.ring, None).status.secret_name.as_deref(),
        Some("db")
    );
}

#[test]
fn key_ids_sorted_and_deduplicated() {
    let k = TestKeys::new();
    let k2 = Identity::generate();
    let two = sealed::seal(
        PLAIN,
        &Binding::new(sealed::Scope::Strict, "prod", "db", "b"),
        &[k.id.recipient(), k2.recipient()],
    )
    .unwrap();
    let ags = AgeSecret::test()
        .sealed("a", PLAIN, &k.id)
        .raw_value("b", &two);
    let p = run(&ags, &k.ring, None);
    assert!(p.ready());
    let mut want = vec![k.id.kid().to_string(), k2.kid().to_string()];
    want.sort();
    assert_eq!(p.status.key_ids, want);
}

// ---- SOPS form ----

fn binding_text(ns: &str, name: &str) -> String {
    sealed::binding_text(sealed::Scope::Strict, ns, name)
}

#[test]
fn sops_form_decrypts() {
    let k = TestKeys::new();
    let ags = AgeSecret::test().sops(
        &[("password", PLAIN)],
        &[("user", "admin")],
        Some(binding_text("prod", "db")),
        &k.id,
    );
    assert!(ags.is_sops());
    let p = run(&ags, &k.ring, None);
    assert!(p.ready(), "{:?}", ready(&p));
    let (s, _, _) = applied(&p);
    let data = s.data.as_ref().unwrap();
    assert_eq!(data["password"].0, PLAIN);
    assert_eq!(data["user"].0, b"admin");
    assert_eq!(p.status.key_ids, vec![k.id.kid().to_string()]);
}

#[test]
fn sops_without_binding_needs_the_flag() {
    let k = TestKeys::new();
    let ags = AgeSecret::test().sops(&[("a", PLAIN)], &[], None, &k.id);
    let p = run(&ags, &k.ring, None);
    assert_eq!(p.reason, Reason::InvalidSpec);
    assert!(ready(&p).message.contains("--allow-unbound-sops"));
    let p = run_opts(
        &ags,
        &k.ring,
        None,
        Options {
            allow_unbound_sops: true,
        },
    );
    assert!(p.ready());
}

#[test]
fn sops_binding_for_another_place_is_scope_mismatch() {
    let k = TestKeys::new();
    let ags = AgeSecret::test().sops(&[("a", PLAIN)], &[], Some(binding_text("dev", "db")), &k.id);
    let p = run(&ags, &k.ring, None);
    assert_eq!(p.reason, Reason::ScopeMismatch);
    // Even with --allow-unbound-sops a present binding is checked.
    let p = run_opts(
        &ags,
        &k.ring,
        None,
        Options {
            allow_unbound_sops: true,
        },
    );
    assert_eq!(p.reason, Reason::ScopeMismatch);
    // Clear scope edited away from the sealed one.
    let ags = AgeSecret::test()
        .sops(
            &[("a", PLAIN)],
            &[],
            Some(binding_text("prod", "db")),
            &k.id,
        )
        .with_scope(Scope::Cluster);
    assert_eq!(run(&ags, &k.ring, None).reason, Reason::ScopeMismatch);
}

#[test]
fn sops_tampering_fails_the_mac() {
    let k = TestKeys::new();
    let a = AgeSecret::test().sops(
        &[("a", PLAIN), ("b", b"other")],
        &[],
        Some(binding_text("prod", "db")),
        &k.id,
    );
    // Swap the two encrypted values: each still decrypts, the MAC does not match.
    let mut swapped = a.clone();
    let d = &mut swapped.spec.spec.data;
    let (va, vb) = (d["a"].clone(), d["b"].clone());
    d.insert("a".into(), vb);
    d.insert("b".into(), va);
    let p = run(&swapped, &k.ring, None);
    assert!(
        matches!(p.reason, Reason::DecryptFailed),
        "{:?} {}",
        p.reason,
        ready(&p).message
    );
    // Removing a value also breaks the MAC.
    let mut removed = a;
    removed.spec.spec.data.remove("b");
    assert_eq!(run(&removed, &k.ring, None).reason, Reason::DecryptFailed);
}

#[test]
fn sops_for_another_cluster_is_unknown_key() {
    let k = TestKeys::new();
    let ags = AgeSecret::test().sops(
        &[("a", PLAIN)],
        &[],
        Some(binding_text("prod", "db")),
        &Identity::generate(),
    );
    let p = run(&ags, &k.ring, None);
    assert!(
        matches!(p.reason, Reason::UnknownKey | Reason::DecryptFailed),
        "{:?}",
        p.reason
    );
    assert_eq!(p.secret, SecretAction::Leave);
}

#[test]
fn reasons_are_pascal_case_and_labels_fixed() {
    for r in Reason::FAILURES
        .iter()
        .chain(&[Reason::Decrypted, Reason::Suspended])
    {
        let s = r.as_str();
        assert!(s.chars().next().unwrap().is_ascii_uppercase());
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(
            r.metric_label()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_')
        );
    }
}

/// Key injection: an AgeSecret whose Secret would be a key Secret of the controller's ring (a
/// reserved name in the controller's namespace) is refused before anything is decrypted, and
/// the existing Secret (if any) is left alone.
#[test]
fn agesecret_cannot_write_a_key_secret_into_the_controllers_namespace() {
    let k = TestKeys::new();
    for name in [
        "kage-key-0123456789abcdef",
        "kage-keyring-auth",
        "kage-keys",
    ] {
        let mut ags = AgeSecret::test();
        ags.metadata.name = Some(name.into());
        ags.metadata.namespace = Some(CONTROLLER_NAMESPACE.into());
        let ags = ags.sealed("key.txt", PLAIN, &k.id);
        let p = run(&ags, &k.ring, None);
        assert_eq!(p.reason, Reason::InvalidSpec, "{name}");
        assert_eq!(p.secret, SecretAction::Leave);
        let c = p.status.condition(CONDITION_READY).unwrap();
        assert!(
            c.message.contains("reserved for the key ring"),
            "{}",
            c.message
        );
        assert_eq!(p.decrypted_values, 0);
    }
    // The same name elsewhere is an ordinary Secret.
    let mut ags = AgeSecret::test();
    ags.metadata.name = Some("kage-key-0123456789abcdef".into());
    let ags = ags.sealed("key.txt", PLAIN, &k.id);
    assert_eq!(run(&ags, &k.ring, None).reason, Reason::Decrypted);
}

/// Template labels and annotations in the kage.dev/ domain (such as kage.dev/key, which marks
/// key Secrets) are refused in every namespace.
#[test]
fn template_metadata_in_kages_domain_is_refused() {
    let k = TestKeys::new();
    for (label, key) in [
        (true, "kage.dev/key"),
        (false, "kage.dev/managed"),
        (true, "rollout.kage.dev/x"),
        (false, "KAGE.DEV/recipient"),
    ] {
        let mut ags = AgeSecret::test().sealed("password", PLAIN, &k.id);
        let meta = &mut ags.spec.spec.template.metadata;
        if label {
            meta.labels.insert(key.into(), "active".into());
        } else {
            meta.annotations.insert(key.into(), "true".into());
        }
        let p = run(&ags, &k.ring, None);
        assert_eq!(p.reason, Reason::InvalidSpec, "{key}");
        assert_eq!(p.secret, SecretAction::Leave);
        let c = p.status.condition(CONDITION_READY).unwrap();
        let field = if label { "labels" } else { "annotations" };
        assert!(
            c.message
                .contains(&format!("spec.template.metadata.{field}")),
            "{}",
            c.message
        );
    }
    let mut ags = AgeSecret::test().sealed("password", PLAIN, &k.id);
    ags.spec
        .spec
        .template
        .metadata
        .labels
        .insert("app.kubernetes.io/name".into(), "db".into());
    assert_eq!(run(&ags, &k.ring, None).reason, Reason::Decrypted);
}
