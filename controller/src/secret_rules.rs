//! Kubernetes' rules on the Secret kage is about to write, checked before writing, and the
//! API server's refusal when it refuses anyway.
//!
//! Pure: the rules are kage-core's mirror of the API server's validation ([`kage_core::k8s`]),
//! so a Secret the server would refuse never reaches it; the existing Secret is left as it is
//! and the AgeSecret reports why at once instead of retrying a write that cannot succeed.
//! Messages name fields, keys and rules, never a value.

use k8s_openapi::api::core::v1::Secret;
use kage_core::k8s::{self, FieldError, SecretFields};

use crate::decrypt::Failure;
use crate::plan::Reason;

/// Borrowed views of a Secret's fields, in the shape the rules take.
struct Borrowed<'a> {
    labels: Vec<(&'a str, &'a str)>,
    annotations: Vec<(&'a str, &'a str)>,
    data: Vec<(&'a str, &'a [u8])>,
}

impl<'a> Borrowed<'a> {
    fn of(s: &'a Secret) -> Borrowed<'a> {
        let pairs =
            |m: Option<&'a std::collections::BTreeMap<String, String>>| -> Vec<(&'a str, &'a str)> {
                m.iter()
                    .flat_map(|m| m.iter())
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect()
            };
        Borrowed {
            labels: pairs(s.metadata.labels.as_ref()),
            annotations: pairs(s.metadata.annotations.as_ref()),
            data: s
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.0.as_slice()))
                .collect(),
        }
    }

    fn fields(&'a self, s: &'a Secret) -> SecretFields<'a> {
        SecretFields {
            name: s.metadata.name.as_deref(),
            namespace: s.metadata.namespace.as_deref(),
            labels: &self.labels,
            annotations: &self.annotations,
            type_: s.type_.as_deref(),
            immutable: s.immutable,
            data: &self.data,
        }
    }
}

fn joined(errs: &[FieldError]) -> String {
    let shown: Vec<String> = errs.iter().take(5).map(ToString::to_string).collect();
    let mut out = shown.join("; ");
    if errs.len() > 5 {
        out.push_str(&format!("; and {} more", errs.len() - 5));
    }
    out
}

/// Would the API server accept `desired`, created new or as an update of `existing`?
///
/// A Secret that breaks `ValidateSecret` is the AgeSecret's fault: `InvalidSpec`. One that only
/// breaks `ValidateSecretUpdate` (an immutable Secret's data, any Secret's type) is
/// `SecretImmutable`, with the way out.
pub fn check(desired: &Secret, existing: Option<&Secret>) -> Result<(), Failure> {
    let name = desired.metadata.name.as_deref().unwrap_or_default();
    let want = Borrowed::of(desired);
    let errs = k8s::validate_secret(&want.fields(desired));
    if !errs.is_empty() {
        return Err(Failure::new(
            Reason::InvalidSpec,
            format!(
                "the API server would refuse Secret {name:?} (Kubernetes ValidateSecret): {}; change the AgeSecret's values or spec.template",
                joined(&errs)
            ),
        ));
    }
    let Some(existing) = existing else {
        return Ok(());
    };
    let have = Borrowed::of(existing);
    let errs = k8s::validate_secret_update(&want.fields(desired), &have.fields(existing));
    if errs.is_empty() {
        return Ok(());
    }
    let namespace = desired.metadata.namespace.as_deref().unwrap_or_default();
    let what = if existing.immutable == Some(true) {
        "is immutable"
    } else {
        "cannot change its type"
    };
    Err(Failure::new(
        Reason::SecretImmutable,
        format!(
            "Secret {name:?} {what} (Kubernetes ValidateSecretUpdate): {}; the Secret is left as it is: delete it (kubectl -n {namespace} delete secret {name}) and kage recreates it, or give the AgeSecret a new name",
            joined(&errs)
        ),
    ))
}

/// Is this API answer a refusal of the object itself (a retry of the same write cannot
/// succeed)? 400 Bad Request, 413 Request Entity Too Large, 422 Invalid.
pub fn is_refusal(status: &kube::core::Status) -> bool {
    matches!(status.code, 400 | 413 | 422)
}

/// The API server's refusal as a status: its code and reason, and for each cause the field and
/// the cause's reason. The server's messages are left out: they quote the values they refuse.
pub fn refusal(status: &kube::core::Status) -> Failure {
    let causes: Vec<String> = status
        .details
        .iter()
        .flat_map(|d| d.causes.iter())
        .take(5)
        .map(|c| match (c.field.is_empty(), c.reason.is_empty()) {
            (false, false) => format!("{}: {}", c.field, c.reason),
            (false, true) => c.field.clone(),
            (true, false) => c.reason.clone(),
            (true, true) => "(no detail)".to_string(),
        })
        .collect();
    let reason = if status.reason.is_empty() {
        "Unknown"
    } else {
        status.reason.as_str()
    };
    let mut message = format!(
        "the API server refused the Secret ({} {reason})",
        status.code
    );
    if !causes.is_empty() {
        message.push_str(": ");
        message.push_str(&causes.join("; "));
    }
    message.push_str(
        "; the Secret is left as it is, and the write is retried when the AgeSecret changes",
    );
    Failure::new(Reason::SecretRejected, message)
}

/// Overwrite the values of a Secret that will not be written.
pub fn wipe(mut secret: Secret) {
    use zeroize::Zeroize;
    for v in secret.data.iter_mut().flat_map(|d| d.values_mut()) {
        v.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::secret;
    use kube::core::Status;

    fn typed(t: &str, data: &[(&str, &[u8])]) -> Secret {
        let mut s = secret(data, |_| {});
        s.type_ = Some(t.into());
        s
    }

    #[test]
    fn valid_secret_passes() {
        check(&typed("Opaque", &[("a", b"x")]), None).unwrap();
    }

    #[test]
    fn refusals_by_validate_secret_are_invalid_spec() {
        for (s, needle) in [
            (
                typed("Opaque", &[("..x", b"v")]),
                "data[..x]: Invalid value: \"..x\": must not start with '..'",
            ),
            (
                typed("kubernetes.io/tls", &[("tls.key", b"k")]),
                "data[tls.crt]: Required value",
            ),
            (
                typed("Opaque", &[("big", &vec![b'v'; k8s::MAX_SECRET_SIZE + 1])]),
                "data: Too long: may not be more than 1048576 bytes",
            ),
        ] {
            let f = check(&s, None).unwrap_err();
            assert_eq!(f.reason, Reason::InvalidSpec);
            assert!(f.message.contains(needle), "{}", f.message);
            assert!(f.message.contains("ValidateSecret"));
            assert!(!f.message.contains("vvvv"));
        }
    }

    #[test]
    fn immutable_and_type_changes_are_secret_immutable() {
        let mut old = typed("Opaque", &[("a", b"old-value")]);
        old.immutable = Some(true);
        let mut new = typed("Opaque", &[("a", b"new-value")]);
        new.immutable = Some(true);
        let f = check(&new, Some(&old)).unwrap_err();
        assert_eq!(f.reason, Reason::SecretImmutable);
        assert!(f.message.contains("is immutable"), "{}", f.message);
        assert!(f.message.contains("delete secret"), "{}", f.message);
        assert!(!f.message.contains("value"), "{}", f.message);
        // Same data, still immutable: accepted (labels may change).
        check(&old.clone(), Some(&old)).unwrap();

        let mutable = typed("Opaque", &[("tls.crt", b"c"), ("tls.key", b"k")]);
        let retyped = typed("kubernetes.io/tls", &[("tls.crt", b"c"), ("tls.key", b"k")]);
        let f = check(&retyped, Some(&mutable)).unwrap_err();
        assert_eq!(f.reason, Reason::SecretImmutable);
        assert!(
            f.message.contains("cannot change its type"),
            "{}",
            f.message
        );
    }

    #[test]
    fn refusal_names_fields_not_values() {
        let status: Status = serde_json::from_value(serde_json::json!({
            "code": 422,
            "reason": "Invalid",
            "message": "Secret \"db\" is invalid: data[x]: Invalid value: \"hunter2\"",
            "details": {"causes": [{
                "reason": "FieldValueInvalid",
                "message": "Invalid value: \"hunter2\"",
                "field": "data[x]",
            }]},
        }))
        .unwrap();
        assert!(is_refusal(&status));
        let f = refusal(&status);
        assert_eq!(f.reason, Reason::SecretRejected);
        assert!(f.message.contains("422 Invalid"), "{}", f.message);
        assert!(
            f.message.contains("data[x]: FieldValueInvalid"),
            "{}",
            f.message
        );
        assert!(!f.message.contains("hunter2"));
        let conflict = Status {
            code: 409,
            ..Status::default()
        };
        assert!(!is_refusal(&conflict));
    }
}
