//! Exit codes and user-facing errors.
//!
//! Every failure reaches `main` as an `anyhow::Error`. [`classify`] walks its chain for a
//! [`UserError`] (a message plus an optional `hint:` the user can act on), a `kage_core::Error`
//! (mapped by its kind) or a broken pipe, and picks the exit code from that.

use std::fmt;
use std::io;

use kage_core::ErrorKind;

/// The documented exit codes (`docs/cli.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// Any other error.
    Error = 1,
    /// Bad command line or option combination.
    Usage = 2,
    /// No identity matches the key ids of a value or file.
    NoMatchingKey = 3,
    /// A ciphertext or MAC failed its integrity check (tampered, truncated, corrupt).
    Integrity = 4,
    /// A sealed value's binding (scope, namespace, name, key) differs from where it was found.
    BindingMismatch = 5,
    /// The input is already encrypted (seal refuses to seal twice).
    AlreadyEncrypted = 6,
    /// The cluster or the controller could not be used: no kubeconfig, forbidden, not found,
    /// unreachable, timed out.
    Cluster = 7,
    /// Interrupted by SIGINT (Ctrl-C).
    Interrupted = 130,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// An error the user caused and can fix: a message, an optional hint and an exit code.
#[derive(Debug)]
pub struct UserError {
    message: String,
    hint: Option<String>,
    exit: Exit,
}

impl UserError {
    /// A plain error (exit 1).
    pub fn new(message: impl Into<String>) -> Self {
        UserError {
            message: message.into(),
            hint: None,
            exit: Exit::Error,
        }
    }

    /// Adds a `hint:` line.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Sets the exit code.
    pub fn exit(mut self, exit: Exit) -> Self {
        self.exit = exit;
        self
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// Shorthand: `Err(user("…").hint("…"))?`.
pub fn user(message: impl Into<String>) -> UserError {
    UserError::new(message)
}

/// Adds `document N` to an error when the input holds several documents.
pub fn in_doc<T>(r: anyhow::Result<T>, index: usize, count: usize) -> anyhow::Result<T> {
    if count > 1 {
        anyhow::Context::with_context(r, || format!("document {}", index + 1))
    } else {
        r
    }
}

/// What `main` does with an error.
pub struct Report {
    /// Exit code.
    pub exit: Exit,
    /// `None` for a broken pipe (exit quietly).
    pub message: Option<String>,
    /// The `hint:` line, if any.
    pub hint: Option<String>,
}

/// Picks the exit code, message and hint for an error.
pub fn classify(err: &anyhow::Error) -> Report {
    let mut exit = None;
    let mut hint = None;
    for cause in err.chain() {
        if let Some(io) = cause.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::BrokenPipe
        {
            return Report {
                exit: Exit::Ok,
                message: None,
                hint: None,
            };
        }
        if let Some(u) = cause.downcast_ref::<UserError>() {
            exit.get_or_insert(u.exit);
            if hint.is_none() {
                hint.clone_from(&u.hint);
            }
        }
        if let Some(core) = cause.downcast_ref::<kage_core::Error>() {
            let (code, h) = core_exit(core);
            exit.get_or_insert(code);
            if hint.is_none() {
                hint = h;
            }
        }
    }
    Report {
        exit: exit.unwrap_or(Exit::Error),
        message: Some(sanitize(&format!("{err:#}"))),
        hint: hint.map(|h| sanitize(&h)),
    }
}

fn core_exit(err: &kage_core::Error) -> (Exit, Option<String>) {
    if let kage_core::Error::Limit { .. } = err {
        return (
            Exit::Error,
            Some(
                "kage refuses inputs beyond its limits (docs/security.md); no real manifest comes \
                 near them, so check that this is the file you meant"
                    .into(),
            ),
        );
    }
    match err.kind() {
        ErrorKind::UnknownKey | ErrorKind::WrongKey => (
            Exit::NoMatchingKey,
            Some(
                "pass an identity for one of the file's recipients with -i, KAGE_IDENTITY, \
                 SOPS_AGE_KEY_FILE or SOPS_AGE_KEY"
                    .into(),
            ),
        ),
        ErrorKind::Corrupt | ErrorKind::MacMismatch => (Exit::Integrity, None),
        ErrorKind::BindingMismatch => (
            Exit::BindingMismatch,
            Some(
                "a sealed value opens only where it was sealed (scope, namespace, name, key); \
                 seal it again for its new place"
                    .into(),
            ),
        ),
        _ => (Exit::Error, None),
    }
}

/// Keeps a message on one line and neutralises terminal control sequences (fd's `sanitize`).
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_control() => '?',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_neutralised() {
        assert_eq!(sanitize("a\u{1b}[31mb"), "a?[31mb");
    }

    #[test]
    fn user_error_code_and_hint() {
        let err = anyhow::Error::new(user("x").hint("do y").exit(Exit::Usage)).context("reading f");
        let r = classify(&err);
        assert_eq!(r.exit, Exit::Usage);
        assert_eq!(r.message.as_deref(), Some("reading f: x"));
        assert_eq!(r.hint.as_deref(), Some("do y"));
    }

    #[test]
    fn broken_pipe_is_quiet() {
        let err = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("stdout");
        let r = classify(&err);
        assert_eq!(r.exit, Exit::Ok);
        assert!(r.message.is_none());
    }
}
