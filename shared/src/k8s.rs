//! Kubernetes' own rules, in one place: the names kage's API is known by, and the validation
//! the API server applies to the objects kage writes (names, data keys, labels, annotations,
//! Secrets).
//!
//! Each rule mirrors one Kubernetes function, named in its doc comment (apimachinery's
//! `pkg/util/validation`, `pkg/api/validation` and `pkg/apis/meta/v1/validation`, and
//! kubernetes' `pkg/apis/core/validation`). Messages are the API server's own words, so the CLI,
//! the controller and kage-testcluster report what a real cluster would. A message or
//! [`FieldError`] carries key names and label values, never a Secret value.

use std::fmt;

/// The API group of kage's resources.
pub const GROUP: &str = "kage.dev";
/// The served version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of an AgeSecret.
pub const API_VERSION: &str = "kage.dev/v1alpha1";
/// `kind` of an AgeSecret.
pub const KIND: &str = "AgeSecret";
/// The resource (plural) name.
pub const PLURAL: &str = "agesecrets";

/// `DNS1123LabelMaxLength`.
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// `DNS1123SubdomainMaxLength` (also the limit of a ConfigMap/Secret key).
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// `qualifiedNameMaxLength`: the name part of a label or annotation key.
pub const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
/// `LabelValueMaxLength`.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
/// `TotalAnnotationSizeLimitB`: keys and values of all annotations together, in bytes.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
/// `core.MaxSecretSize`: the values of a Secret's `data` together, in bytes (keys not counted).
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

/// Secret types and the data keys they require (`core.SecretType*`, `core.*Key`).
pub mod secret_type {
    /// `Opaque` (also what an empty type means).
    pub const OPAQUE: &str = "Opaque";
    /// `kubernetes.io/service-account-token`.
    pub const SERVICE_ACCOUNT_TOKEN: &str = "kubernetes.io/service-account-token";
    /// The annotation a service-account-token Secret needs.
    pub const SERVICE_ACCOUNT_NAME_KEY: &str = "kubernetes.io/service-account.name";
    /// `kubernetes.io/dockercfg`.
    pub const DOCKERCFG: &str = "kubernetes.io/dockercfg";
    /// Its data key.
    pub const DOCKER_CONFIG_KEY: &str = ".dockercfg";
    /// `kubernetes.io/dockerconfigjson`.
    pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
    /// Its data key.
    pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
    /// `kubernetes.io/basic-auth`.
    pub const BASIC_AUTH: &str = "kubernetes.io/basic-auth";
    /// Its user name key.
    pub const BASIC_AUTH_USERNAME_KEY: &str = "username";
    /// Its password key.
    pub const BASIC_AUTH_PASSWORD_KEY: &str = "password";
    /// `kubernetes.io/ssh-auth`.
    pub const SSH_AUTH: &str = "kubernetes.io/ssh-auth";
    /// Its private key.
    pub const SSH_AUTH_PRIVATE_KEY: &str = "ssh-privatekey";
    /// `kubernetes.io/tls`.
    pub const TLS: &str = "kubernetes.io/tls";
    /// Its certificate key.
    pub const TLS_CERT_KEY: &str = "tls.crt";
    /// Its private key key.
    pub const TLS_PRIVATE_KEY_KEY: &str = "tls.key";
}

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const CONFIG_MAP_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_MAP_KEY_ERR: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";

/// `MaxLenError`.
fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// `RegexError`: the message, examples and the regex, exactly as apimachinery words it.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut out = msg.to_string();
    if examples.is_empty() {
        out.push_str(&format!(" (regex used for validation is '{fmt}')"));
        return out;
    }
    out.push_str(" (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{e}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` without a length limit.
fn matches_label_fmt(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter().all(|c| edge(c) || *c == b'-')
}

/// `[A-Za-z0-9]`, then `[-A-Za-z0-9_.]*`, ending in `[A-Za-z0-9]` (non-empty).
fn matches_qualified_fmt(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `IsDNS1123Label`: lowercase alphanumerics and `-`, alphanumeric at both ends, at most 63.
/// An empty list means valid. (Namespace names, `ValidateNamespaceName`.)
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_label_fmt(value) {
        if value.split('.').all(matches_label_fmt) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// `IsDNS1123Subdomain`: dot-separated DNS-1123 labels, at most 253 in all (no per-label
/// limit). Secret names (`ValidateSecretName` = `NameIsDNSSubdomain`).
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !value.split('.').all(matches_label_fmt) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// `IsQualifiedName`: a label or annotation key, `[prefix/]name` with a DNS-1123 subdomain
/// prefix and a name of at most 63 alphanumerics, `-`, `_`, `.`.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(QUALIFIED_NAME_MAX_LENGTH)
        ));
    }
    if !matches_qualified_fmt(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// `IsValidLabelValue`: empty, or at most 63 alphanumerics, `-`, `_`, `.`, alphanumeric at
/// both ends.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !value.is_empty() && !matches_qualified_fmt(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// `IsConfigMapKey`: a Secret or ConfigMap data key: `[-._a-zA-Z0-9]+`, at most 253 bytes, not
/// `.` or `..`, and not starting with `..` (the key becomes a file name in a volume).
pub fn is_config_map_key(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    let charset = !value.is_empty()
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if !charset {
        errs.push(regex_error(
            CONFIG_MAP_KEY_ERR,
            CONFIG_MAP_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    if value == "." {
        errs.push("must not be '.'".to_string());
    } else if value == ".." {
        errs.push("must not be '..'".to_string());
    } else if value.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// The kind of a [`FieldError`] (`field.ErrorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// `FieldValueRequired`.
    Required,
    /// `FieldValueInvalid`.
    Invalid,
    /// `FieldValueForbidden`.
    Forbidden,
    /// `FieldValueTooLong`.
    TooLong,
}

impl ErrorType {
    /// The `StatusCause.reason` the API server reports.
    pub fn cause_reason(self) -> &'static str {
        match self {
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
        }
    }

    fn words(self) -> &'static str {
        match self {
            ErrorType::Required => "Required value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
        }
    }
}

/// One violated rule (`field.Error`): the field path, what is wrong, and the offending key or
/// label value when the API server would quote it (never a Secret value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// What kind of violation.
    pub type_: ErrorType,
    /// The field path, e.g. `data[tls.crt]`, `metadata.labels`.
    pub field: String,
    /// The quoted bad value (a key name, a label value, `<secret contents redacted>`).
    pub bad_value: Option<String>,
    /// The rule's explanation.
    pub detail: String,
}

impl FieldError {
    fn new(type_: ErrorType, field: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError {
            type_,
            field: field.into(),
            bad_value: None,
            detail: detail.into(),
        }
    }

    fn invalid(field: impl Into<String>, value: &str, detail: impl Into<String>) -> FieldError {
        FieldError {
            bad_value: Some(value.to_string()),
            ..FieldError::new(ErrorType::Invalid, field, detail)
        }
    }

    fn required(field: impl Into<String>) -> FieldError {
        FieldError::new(ErrorType::Required, field, "")
    }

    fn too_long(field: impl Into<String>, max: usize) -> FieldError {
        FieldError::new(
            ErrorType::TooLong,
            field,
            format!("may not be more than {max} bytes"),
        )
    }

    /// The message without the field: `Invalid value: "..x": must not start with '..'`.
    pub fn message(&self) -> String {
        let mut out = self.type_.words().to_string();
        if let Some(v) = &self.bad_value {
            // JSON quoting: what Go's `%q` gives for the printable ASCII of keys and labels.
            out.push_str(": ");
            out.push_str(&serde_json::Value::from(v.as_str()).to_string());
        }
        if !self.detail.is_empty() {
            out.push_str(": ");
            out.push_str(&self.detail);
        }
        out
    }
}

impl fmt::Display for FieldError {
    /// As the API server prints it: `data[..x]: Invalid value: "..x": must not start with '..'`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message())
    }
}

/// `ValidateLabels`: every key a qualified name, every value a valid label value.
pub fn validate_labels<'a>(
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    field: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels {
        errs.extend(
            is_qualified_name(k)
                .into_iter()
                .map(|m| FieldError::invalid(field, k, m)),
        );
        errs.extend(
            is_valid_label_value(v)
                .into_iter()
                .map(|m| FieldError::invalid(field, v, m)),
        );
    }
    errs
}

/// `ValidateAnnotations`: every key a qualified name (compared lowercased), and keys plus
/// values at most 256 KiB together.
pub fn validate_annotations<'a>(
    annotations: impl IntoIterator<Item = (&'a str, &'a str)>,
    field: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (k, v) in annotations {
        errs.extend(
            is_qualified_name(&k.to_ascii_lowercase())
                .into_iter()
                .map(|m| FieldError::invalid(field, k, m)),
        );
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

/// A Secret as the rules see it, borrowed from whatever model the caller holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct SecretFields<'a> {
    /// `metadata.name` (not checked when absent).
    pub name: Option<&'a str>,
    /// `metadata.namespace` (not checked when absent).
    pub namespace: Option<&'a str>,
    /// `metadata.labels`.
    pub labels: &'a [(&'a str, &'a str)],
    /// `metadata.annotations`.
    pub annotations: &'a [(&'a str, &'a str)],
    /// `type` (absent or empty means Opaque).
    pub type_: Option<&'a str>,
    /// `immutable`.
    pub immutable: Option<bool>,
    /// `data` after `stringData` is folded in, decoded.
    pub data: &'a [(&'a str, &'a [u8])],
}

impl SecretFields<'_> {
    /// The type, `Opaque` when absent or empty (what the API server defaults it to).
    pub fn type_or_opaque(&self) -> &str {
        match self.type_ {
            Some(t) if !t.is_empty() => t,
            _ => secret_type::OPAQUE,
        }
    }

    fn get(&self, key: &str) -> Option<&[u8]> {
        self.data.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// `ValidateSecret` (with the `ValidateObjectMeta` parts that apply: name, namespace, labels,
/// annotations): data keys, the 1 MiB data limit, and the keys each Secret type requires.
pub fn validate_secret(s: &SecretFields<'_>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(name) = s.name {
        errs.extend(
            is_dns1123_subdomain(name)
                .into_iter()
                .map(|m| FieldError::invalid("metadata.name", name, m)),
        );
    }
    if let Some(ns) = s.namespace {
        errs.extend(
            is_dns1123_label(ns)
                .into_iter()
                .map(|m| FieldError::invalid("metadata.namespace", ns, m)),
        );
    }
    errs.extend(validate_labels(s.labels.iter().copied(), "metadata.labels"));
    errs.extend(validate_annotations(
        s.annotations.iter().copied(),
        "metadata.annotations",
    ));
    errs.extend(validate_secret_body(s));
    errs
}

/// `ValidateSecret` without its `ValidateObjectMeta` call (for a caller that checks metadata
/// for every kind of object): data keys, the 1 MiB limit, the keys each type requires.
pub fn validate_secret_body(s: &SecretFields<'_>) -> Vec<FieldError> {
    use secret_type::*;
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (key, value) in s.data {
        errs.extend(
            is_config_map_key(key)
                .into_iter()
                .map(|m| FieldError::invalid(format!("data[{key}]"), key, m)),
        );
        total += value.len();
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("data", MAX_SECRET_SIZE));
    }
    let json_object = |key: &str| -> Option<FieldError> {
        let Some(bytes) = s.get(key) else {
            return Some(FieldError::required(format!("data[{key}]")));
        };
        match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(bytes) {
            Ok(_) => None,
            // serde_json's message gives a position, never the input.
            Err(e) => Some(FieldError::invalid(
                format!("data[{key}]"),
                "<secret contents redacted>",
                e.to_string(),
            )),
        }
    };
    match s.type_or_opaque() {
        SERVICE_ACCOUNT_TOKEN => {
            let named = s
                .annotations
                .iter()
                .any(|(k, v)| *k == SERVICE_ACCOUNT_NAME_KEY && !v.is_empty());
            if !named {
                errs.push(FieldError::required(format!(
                    "metadata.annotations[{SERVICE_ACCOUNT_NAME_KEY}]"
                )));
            }
        }
        DOCKERCFG => errs.extend(json_object(DOCKER_CONFIG_KEY)),
        DOCKER_CONFIG_JSON => errs.extend(json_object(DOCKER_CONFIG_JSON_KEY)),
        BASIC_AUTH
            if s.get(BASIC_AUTH_USERNAME_KEY).is_none()
                && s.get(BASIC_AUTH_PASSWORD_KEY).is_none() =>
        {
            errs.push(FieldError::required(format!(
                "data[{BASIC_AUTH_USERNAME_KEY}]"
            )));
            errs.push(FieldError::required(format!(
                "data[{BASIC_AUTH_PASSWORD_KEY}]"
            )));
        }
        SSH_AUTH if s.get(SSH_AUTH_PRIVATE_KEY).is_none_or(<[u8]>::is_empty) => {
            errs.push(FieldError::required(format!(
                "data[{SSH_AUTH_PRIVATE_KEY}]"
            )));
        }
        TLS => {
            for key in [TLS_CERT_KEY, TLS_PRIVATE_KEY_KEY] {
                if s.get(key).is_none() {
                    errs.push(FieldError::required(format!("data[{key}]")));
                }
            }
        }
        _ => {}
    }
    errs
}

/// The update rules of `ValidateSecretUpdate` (it also runs [`validate_secret`] on the new
/// object): `type` never changes, and once `immutable` is true neither `data` nor `immutable`
/// may change.
pub fn validate_secret_update(new: &SecretFields<'_>, old: &SecretFields<'_>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if new.type_or_opaque() != old.type_or_opaque() {
        errs.push(FieldError::invalid(
            "type",
            new.type_or_opaque(),
            "field is immutable",
        ));
    }
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errs.push(FieldError::new(
                ErrorType::Forbidden,
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
        if !same_data(new.data, old.data) {
            errs.push(FieldError::new(
                ErrorType::Forbidden,
                "data",
                "field is immutable when `immutable` is set",
            ));
        }
    }
    errs
}

/// The same keys with the same bytes, in any order.
fn same_data(a: &[(&str, &[u8])], b: &[(&str, &[u8])]) -> bool {
    // Borrowed, not copied: the values are plaintext.
    fn map<'a>(d: &'a [(&'a str, &'a [u8])]) -> std::collections::BTreeMap<&'a str, &'a [u8]> {
        d.iter().copied().collect()
    }
    a.len() == b.len() && map(a) == map(b)
}

#[cfg(test)]
#[path = "k8s_tests.rs"]
mod tests;
