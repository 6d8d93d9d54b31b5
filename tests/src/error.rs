//! The crate's one error type. Every API failure becomes a `metav1.Status` with the
//! reason, code and message shape the real API server uses, because clients (kube-rs,
//! kubectl) branch on `reason` and `code`, and tests compare messages.

use serde_json::{Value, json};

/// One cause of a 422 Invalid (`details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueForbidden`, ...
    pub reason: String,
    /// The message without the field prefix, e.g. `Required value`.
    pub message: String,
    /// The field path, e.g. `metadata.name` or `data[tls.crt]`.
    pub field: String,
}

impl Cause {
    /// A cause with the given reason, field and message.
    pub fn new(reason: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Cause {
            reason: reason.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }
    /// `Required value`.
    pub fn required(field: impl Into<String>) -> Self {
        Cause::new("FieldValueRequired", field, "Required value")
    }
    /// `Invalid value: "x": why`.
    pub fn invalid(field: impl Into<String>, value: &str, why: &str) -> Self {
        Cause::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {}: {why}", json!(value)),
        )
    }
    /// `Forbidden: why`.
    pub fn forbidden(field: impl Into<String>, why: &str) -> Self {
        Cause::new("FieldValueForbidden", field, format!("Forbidden: {why}"))
    }
}

/// An API error, rendered as `metav1.Status`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// 404.
    #[error("{resource} {name:?} not found")]
    NotFound {
        /// Qualified resource, e.g. `secrets` or `leases.coordination.k8s.io`.
        resource: String,
        /// Object name.
        name: String,
    },
    /// 409 AlreadyExists.
    #[error("{resource} {name:?} already exists")]
    AlreadyExists {
        /// Qualified resource.
        resource: String,
        /// Object name.
        name: String,
    },
    /// 409 Conflict (stale resourceVersion, failed precondition, SSA conflicts).
    #[error("{message}")]
    Conflict {
        /// Qualified resource.
        resource: String,
        /// Object name.
        name: String,
        /// Full message.
        message: String,
        /// Causes (SSA field conflicts).
        causes: Vec<Cause>,
    },
    /// 422 Invalid.
    #[error("{}{} {name:?} is invalid: {}", kind, if group.is_empty() { String::new() } else { format!(".{group}") }, join_causes(.causes))]
    Invalid {
        /// Kind, e.g. `Secret`.
        kind: String,
        /// Group of the kind.
        group: String,
        /// Object name.
        name: String,
        /// What is wrong.
        causes: Vec<Cause>,
    },
    /// 403 Forbidden (RBAC and terminating namespaces).
    #[error("{message}")]
    Forbidden {
        /// Qualified resource (`details.kind` is the plain resource).
        resource: String,
        /// Group.
        group: String,
        /// Object name.
        name: String,
        /// Full message.
        message: String,
    },
    /// 401.
    #[error("Unauthorized")]
    Unauthorized,
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 405.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 406 / 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 410 Gone (watch from a compacted resourceVersion).
    #[error("{0}")]
    Gone(String),
    /// 413.
    #[error("{0}")]
    TooLarge(String),
    /// 422 without a kind (e.g. a JSON patch that does not apply).
    #[error("{0}")]
    Unprocessable(String),
    /// 503 (service proxy without an upstream).
    #[error("{0}")]
    ServiceUnavailable(String),
    /// 500.
    #[error("{0}")]
    Internal(String),
    /// Any status, e.g. injected by a fault.
    #[error("{message}")]
    Custom {
        /// HTTP status code.
        code: u16,
        /// Status reason.
        reason: String,
        /// Message.
        message: String,
    },
}

fn join_causes(causes: &[Cause]) -> String {
    let parts: Vec<String> = causes
        .iter()
        .map(|c| {
            if c.field.is_empty() {
                c.message.clone()
            } else {
                format!("{}: {}", c.field, c.message)
            }
        })
        .collect();
    if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("[{}]", parts.join(", "))
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// 404 for a qualified resource and name.
    pub fn not_found(resource: &str, name: &str) -> Self {
        Error::NotFound {
            resource: resource.to_string(),
            name: name.to_string(),
        }
    }

    /// 409 Conflict for a stale resourceVersion.
    pub fn stale(resource: &str, name: &str) -> Self {
        Error::Conflict {
            resource: resource.to_string(),
            name: name.to_string(),
            message: format!(
                "Operation cannot be fulfilled on {resource} {name:?}: the object has been modified; please apply your changes to the latest version and try again"
            ),
            causes: vec![],
        }
    }

    /// 422 with one cause.
    pub fn invalid(kind: &str, name: &str, cause: Cause) -> Self {
        Error::Invalid {
            kind: kind.to_string(),
            group: String::new(),
            name: name.to_string(),
            causes: vec![cause],
        }
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            Error::NotFound { .. } => 404,
            Error::AlreadyExists { .. } | Error::Conflict { .. } => 409,
            Error::Invalid { .. } | Error::Unprocessable(_) => 422,
            Error::Forbidden { .. } => 403,
            Error::Unauthorized => 401,
            Error::BadRequest(_) => 400,
            Error::MethodNotAllowed(_) => 405,
            Error::UnsupportedMediaType(_) => 415,
            Error::Gone(_) => 410,
            Error::TooLarge(_) => 413,
            Error::ServiceUnavailable(_) => 503,
            Error::Internal(_) => 500,
            Error::Custom { code, .. } => *code,
        }
    }

    /// The Status `reason`.
    pub fn reason(&self) -> String {
        match self {
            Error::NotFound { .. } => "NotFound",
            Error::AlreadyExists { .. } => "AlreadyExists",
            Error::Conflict { .. } => "Conflict",
            Error::Invalid { .. } => "Invalid",
            Error::Unprocessable(_) => "Invalid",
            Error::Forbidden { .. } => "Forbidden",
            Error::Unauthorized => "Unauthorized",
            Error::BadRequest(_) => "BadRequest",
            Error::MethodNotAllowed(_) => "MethodNotAllowed",
            Error::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Error::Gone(_) => "Expired",
            Error::TooLarge(_) => "RequestEntityTooLarge",
            Error::ServiceUnavailable(_) => "ServiceUnavailable",
            Error::Internal(_) => "InternalError",
            Error::Custom { reason, .. } => reason,
        }
        .to_string()
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        let details = match self {
            Error::NotFound { resource, name } | Error::AlreadyExists { resource, name } => {
                Some(details(resource, name, &[]))
            }
            Error::Conflict {
                resource,
                name,
                causes,
                ..
            } => Some(details(resource, name, causes)),
            Error::Forbidden {
                resource,
                group,
                name,
                ..
            } => {
                let mut d = json!({"kind": resource.split('.').next().unwrap_or_default()});
                if !name.is_empty() {
                    d["name"] = json!(name);
                }
                if !group.is_empty() {
                    d["group"] = json!(group);
                }
                Some(d)
            }
            Error::Invalid {
                kind,
                group,
                name,
                causes,
            } => {
                let mut d = json!({"name": name, "kind": kind, "causes": causes_json(causes)});
                if !group.is_empty() {
                    d["group"] = json!(group);
                }
                Some(d)
            }
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        status
    }
}

fn details(qualified: &str, name: &str, causes: &[Cause]) -> Value {
    let (kind, group) = match qualified.split_once('.') {
        Some((k, g)) => (k, g),
        None => (qualified, ""),
    };
    let mut d = json!({"name": name, "kind": kind});
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    if !causes.is_empty() {
        d["causes"] = causes_json(causes);
    }
    d
}

fn causes_json(causes: &[Cause]) -> Value {
    Value::Array(
        causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_status_shape() {
        let s = Error::not_found("leases.coordination.k8s.io", "x").to_status();
        assert_eq!(s["message"], r#"leases.coordination.k8s.io "x" not found"#);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["code"], 404);
        assert_eq!(s["details"]["group"], "coordination.k8s.io");
        assert_eq!(s["details"]["kind"], "leases");
    }

    #[test]
    fn invalid_joins_causes() {
        let e = Error::Invalid {
            kind: "Secret".into(),
            group: String::new(),
            name: "s".into(),
            causes: vec![
                Cause::required("data[tls.crt]"),
                Cause::required("data[tls.key]"),
            ],
        };
        assert_eq!(
            e.to_string(),
            r#"Secret "s" is invalid: [data[tls.crt]: Required value, data[tls.key]: Required value]"#
        );
        assert_eq!(
            e.to_status()["details"]["causes"][1]["field"],
            "data[tls.key]"
        );
    }
}
