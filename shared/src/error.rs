//! The one error type of kage-core.
//!
//! Messages name the file position, field or key id involved and never contain a secret value:
//! they end up in CLI output, controller events and AgeSecret status.

use crate::keys::Kid;

/// Result alias for kage-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in kage-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// None of the identities available has a key id the value was sealed to.
    #[error("no identity for key id(s) {}", join_kids(.kids))]
    UnknownKey {
        /// The key ids the value names.
        kids: Vec<Kid>,
    },
    /// An identity was tried but could not decrypt (the value was not sealed to it).
    #[error("no identity could decrypt this value (tried {tried} identit{})", if *.tried == 1 { "y" } else { "ies" })]
    WrongKey {
        /// How many identities were tried.
        tried: usize,
    },
    /// Ciphertext or an encoding inside it is damaged (tampered, truncated, bad base64).
    #[error("corrupted ciphertext: {what}")]
    Corrupt {
        /// What was found wrong (never the plaintext).
        what: String,
    },
    /// A value is bound to another place than the one it was found in.
    #[error("binding mismatch: sealed for {found}, found at {expected}")]
    BindingMismatch {
        /// Where the value was found (public: scope, namespace, name, key).
        expected: String,
        /// What the value was sealed for (public).
        found: String,
    },
    /// The SOPS MAC does not match the document: a value was changed, added, removed or reordered.
    #[error(
        "MAC mismatch: the file was modified after it was encrypted (values changed, added, removed or reordered)"
    )]
    MacMismatch,
    /// The SOPS metadata has no MAC: nothing proves the values are the ones encrypted (a
    /// stripped MAC is tampering, like a wrong one).
    #[error(
        "sops metadata: mac is missing: the file cannot be checked for tampering (values changed, added or removed)"
    )]
    MacMissing,
    /// The SOPS metadata is malformed or unsupported.
    #[error("sops metadata: {what}")]
    Sops {
        /// What is wrong.
        what: String,
    },
    /// A YAML or JSON syntax error.
    #[error("invalid {format}{}: {message}", .line.map(|l| format!(" at line {l}")).unwrap_or_default())]
    Parse {
        /// `YAML` or `JSON`.
        format: &'static str,
        /// 1-based line, when known.
        line: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// An input exceeds one of the limits of [`crate::limits`] (size, nodes, depth, documents,
    /// aliases); nothing of it was kept.
    #[error("{format} input exceeds the {limit}{}", .line.map(|l| format!(" at line {l}")).unwrap_or_default())]
    Limit {
        /// `YAML` or `JSON`.
        format: &'static str,
        /// The limit that was hit.
        limit: crate::limits::Limit,
        /// 1-based line where it was hit, when known.
        line: Option<usize>,
    },
    /// A document is well-formed but wrong at `path`.
    #[error("{path}: {message}")]
    Invalid {
        /// Dotted path of the offending field (`spec.encryptedData.password`).
        path: String,
        /// What is wrong and, where possible, what to do.
        message: String,
    },
    /// An identity or recipient string could not be parsed.
    #[error("invalid key: {message}")]
    InvalidKey {
        /// What is wrong (never the key material).
        message: String,
    },
    /// Encryption itself failed (I/O into an in-memory buffer, or a recipient refused).
    #[error("encryption failed: {what}")]
    Encrypt {
        /// What failed.
        what: String,
    },
}

/// A coarse classification of [`Error`], stable for exit codes, metrics and status reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`Error::UnknownKey`].
    UnknownKey,
    /// See [`Error::WrongKey`].
    WrongKey,
    /// See [`Error::Corrupt`].
    Corrupt,
    /// See [`Error::BindingMismatch`].
    BindingMismatch,
    /// See [`Error::MacMismatch`].
    MacMismatch,
    /// See [`Error::Parse`] and [`Error::Limit`].
    Parse,
    /// See [`Error::Invalid`] and [`Error::Sops`].
    Invalid,
    /// See [`Error::InvalidKey`].
    InvalidKey,
    /// Anything else.
    Other,
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::UnknownKey { .. } => ErrorKind::UnknownKey,
            Error::WrongKey { .. } => ErrorKind::WrongKey,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::BindingMismatch { .. } => ErrorKind::BindingMismatch,
            Error::MacMismatch | Error::MacMissing => ErrorKind::MacMismatch,
            Error::Parse { .. } | Error::Limit { .. } => ErrorKind::Parse,
            Error::Invalid { .. } | Error::Sops { .. } => ErrorKind::Invalid,
            Error::InvalidKey { .. } => ErrorKind::InvalidKey,
            Error::Encrypt { .. } => ErrorKind::Other,
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        Error::Corrupt { what: what.into() }
    }

    pub(crate) fn sops(what: impl Into<String>) -> Self {
        Error::Sops { what: what.into() }
    }

    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Prefix the path of an [`Error::Invalid`] (used while descending a document).
    pub fn at_path(self, prefix: &str) -> Self {
        match self {
            Error::Invalid { path, message } if !prefix.is_empty() => Error::Invalid {
                path: if path.is_empty() {
                    prefix.to_string()
                } else {
                    format!("{prefix}.{path}")
                },
                message,
            },
            other => other,
        }
    }
}

fn join_kids(kids: &[Kid]) -> String {
    kids.iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
