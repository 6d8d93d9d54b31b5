//! Fault injection: failing requests, latency, dropped watches, forced conflicts.
//! Driven from tests through [`Faults`] or over HTTP at `/_testcluster/faults`.

use regex::Regex;
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which requests a rule applies to.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    /// HTTP method (`GET`, `PATCH`, ...); any when `None`.
    pub method: Option<String>,
    /// Path prefix, e.g. `/api/v1/namespaces/default/secrets`.
    pub path_prefix: Option<String>,
    /// Path regex, alternative to the prefix.
    pub path_regex: Option<Regex>,
}

impl Matcher {
    /// Match any request whose path starts with `prefix`.
    pub fn prefix(prefix: &str) -> Self {
        Matcher {
            path_prefix: Some(prefix.to_string()),
            ..Default::default()
        }
    }

    /// Restrict to one HTTP method.
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Match paths by regex.
    pub fn regex(re: Regex) -> Self {
        Matcher {
            path_regex: Some(re),
            ..Default::default()
        }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
            && self.path_regex.as_ref().is_none_or(|r| r.is_match(path))
    }
}

/// What a rule does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answer with this status code and message (as a metav1.Status).
    Fail {
        /// HTTP status.
        code: u16,
        /// Message.
        message: String,
    },
    /// Delay the request.
    Latency(Duration),
}

#[derive(Debug, Clone)]
struct Rule {
    matcher: Matcher,
    action: Action,
    /// Remaining uses; `None` means forever.
    remaining: Option<u32>,
}

#[derive(Debug, Default)]
struct Inner {
    rules: Vec<Rule>,
    conflicts: u32,
    drop_watches: u64,
}

type Callback = Arc<dyn Fn() + Send + Sync>;

/// The fault-injection handle (cheap to clone; shared with the server).
#[derive(Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<Inner>>,
    on_drop_watches: Arc<Mutex<Option<Callback>>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("inner", &self.lock())
            .finish()
    }
}

/// What the server must do for one request.
#[derive(Debug, Default, Clone)]
pub struct Verdict {
    /// Sleep first.
    pub delay: Duration,
    /// Then fail with (code, message).
    pub fail: Option<(u16, String)>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means a test panicked elsewhere; the data is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fail the next `n` requests matching with `code` and `message`.
    pub fn fail_next(&self, n: u32, matcher: Matcher, code: u16, message: &str) {
        self.lock().rules.push(Rule {
            matcher,
            action: Action::Fail {
                code,
                message: message.to_string(),
            },
            remaining: Some(n),
        });
    }

    /// Fail every matching request until [`Faults::clear`].
    pub fn fail_always(&self, matcher: Matcher, code: u16, message: &str) {
        self.lock().rules.push(Rule {
            matcher,
            action: Action::Fail {
                code,
                message: message.to_string(),
            },
            remaining: None,
        });
    }

    /// Delay every matching request until [`Faults::clear`].
    pub fn add_latency(&self, matcher: Matcher, delay: Duration) {
        self.lock().rules.push(Rule {
            matcher,
            action: Action::Latency(delay),
            remaining: None,
        });
    }

    /// Reject the next `n` writes (POST/PUT/PATCH/DELETE on resources) with 409 Conflict.
    pub fn conflict_next_writes(&self, n: u32) {
        self.lock().conflicts += n;
    }

    /// Close every open watch now (clients see the stream end and must re-watch).
    pub fn drop_watches(&self) {
        self.lock().drop_watches += 1;
        let cb = self
            .on_drop_watches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(cb) = cb {
            cb();
        }
    }

    /// Remove every rule and pending conflict.
    pub fn clear(&self) {
        let mut g = self.lock();
        g.rules.clear();
        g.conflicts = 0;
    }

    /// The server hooks watch dropping here.
    pub(crate) fn set_drop_callback(&self, cb: Callback) {
        *self
            .on_drop_watches
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(cb);
    }

    /// Decide for one request (consumes counted rules).
    pub fn evaluate(&self, method: &str, path: &str) -> Verdict {
        let mut g = self.lock();
        let mut v = Verdict::default();
        for rule in g.rules.iter_mut() {
            if rule.remaining == Some(0) || !rule.matcher.matches(method, path) {
                continue;
            }
            match &rule.action {
                Action::Latency(d) => v.delay += *d,
                Action::Fail { code, message } => {
                    if v.fail.is_some() {
                        continue;
                    }
                    v.fail = Some((*code, message.clone()));
                }
            }
            if let Some(n) = rule.remaining.as_mut() {
                *n -= 1;
            }
        }
        g.rules.retain(|r| r.remaining != Some(0));
        v
    }

    /// Take one pending forced conflict, if any.
    pub fn take_conflict(&self) -> bool {
        let mut g = self.lock();
        if g.conflicts > 0 {
            g.conflicts -= 1;
            true
        } else {
            false
        }
    }
}

/// The JSON body of `POST /_testcluster/faults`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRequest {
    /// `fail`, `latency`, `conflict`, `drop-watches`.
    pub action: String,
    /// HTTP method to match.
    #[serde(default)]
    pub method: Option<String>,
    /// Path prefix to match.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Path regex to match.
    #[serde(default)]
    pub path_regex: Option<String>,
    /// How many requests (fail, conflict); forever when absent (fail).
    #[serde(default)]
    pub count: Option<u32>,
    /// Status code for `fail` (default 500).
    #[serde(default)]
    pub status: Option<u16>,
    /// Message for `fail`.
    #[serde(default)]
    pub message: Option<String>,
    /// Delay for `latency`.
    #[serde(default)]
    pub latency_ms: Option<u64>,
}

impl FaultRequest {
    /// Apply to a handle.
    pub fn apply(&self, faults: &Faults) -> Result<(), String> {
        let matcher = Matcher {
            method: self.method.as_ref().map(|m| m.to_ascii_uppercase()),
            path_prefix: self.path_prefix.clone(),
            path_regex: match &self.path_regex {
                Some(r) => Some(Regex::new(r).map_err(|e| format!("invalid pathRegex: {e}"))?),
                None => None,
            },
        };
        match self.action.as_str() {
            "fail" => {
                let code = self.status.unwrap_or(500);
                if !(400..=599).contains(&code) {
                    return Err(format!("status {code} is not an error status"));
                }
                let msg = self
                    .message
                    .clone()
                    .unwrap_or_else(|| "injected fault".into());
                match self.count {
                    Some(n) => faults.fail_next(n, matcher, code, &msg),
                    None => faults.fail_always(matcher, code, &msg),
                }
            }
            "latency" => faults.add_latency(
                matcher,
                Duration::from_millis(self.latency_ms.ok_or("latency needs latencyMs")?),
            ),
            "conflict" => faults.conflict_next_writes(self.count.unwrap_or(1)),
            "drop-watches" => faults.drop_watches(),
            other => return Err(format!("unknown action {other:?}")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_failures_and_latency() {
        let f = Faults::default();
        f.fail_next(
            2,
            Matcher::prefix("/api/v1/secrets").method("get"),
            503,
            "down",
        );
        f.add_latency(Matcher::prefix("/api"), Duration::from_millis(5));
        assert_eq!(f.evaluate("POST", "/api/v1/secrets").fail, None);
        let v = f.evaluate("GET", "/api/v1/secrets");
        assert_eq!(v.fail, Some((503, "down".to_string())));
        assert_eq!(v.delay, Duration::from_millis(5));
        assert!(f.evaluate("GET", "/api/v1/secrets").fail.is_some());
        assert!(f.evaluate("GET", "/api/v1/secrets").fail.is_none());
        f.clear();
        assert_eq!(f.evaluate("GET", "/api").delay, Duration::ZERO);
    }

    #[test]
    fn regex_and_conflicts_and_requests() {
        let f = Faults::default();
        let req: FaultRequest = serde_json::from_str(
            r#"{"action":"fail","pathRegex":"^/apis/.*/leases","count":1,"status":429,"message":"slow down"}"#,
        )
        .expect("parses");
        req.apply(&f).expect("applies");
        assert!(f.evaluate("GET", "/api/v1/x").fail.is_none());
        assert_eq!(
            f.evaluate("PUT", "/apis/coordination.k8s.io/v1/namespaces/a/leases/l")
                .fail,
            Some((429, "slow down".into()))
        );
        f.conflict_next_writes(1);
        assert!(f.take_conflict());
        assert!(!f.take_conflict());
        let bad: FaultRequest = serde_json::from_str(r#"{"action":"nope"}"#).expect("parses");
        assert!(bad.apply(&f).is_err());
    }
}
