//! The HTTP API (every replica) and the metrics endpoint.
//!
//! API port: `GET /v1/keys`, `POST /v1/verify`, `POST /v1/reencrypt`, `GET /healthz`,
//! `GET /readyz`. Metrics port: `GET /metrics`. Request bodies are capped at [`MAX_BODY`];
//! verify and reencrypt share a token-bucket rate limit. No response ever carries plaintext or
//! private keys.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kage_core::api::v1alpha1::AgeSecret;
use kage_core::keys::Recipient;
use kage_core::sealed::{self, Binding};
use kage_core::sops::SopsFile;
use serde::{Deserialize, Serialize};

use crate::decrypt::{self, Form, Options};
use crate::keystore::KeyState;
use crate::metrics::Metrics;

/// Largest accepted request body (an AgeSecret is far smaller; a Secret is at most 1 MiB).
pub const MAX_BODY: usize = 2 << 20;

/// A token bucket: `rate` requests per second, bursts of `2 × rate`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A limiter allowing `per_second` requests per second (0 = unlimited).
    pub fn new(per_second: u32) -> RateLimiter {
        let rate = f64::from(per_second);
        RateLimiter {
            rate,
            burst: (rate * 2.0).max(1.0),
            state: Mutex::new(((rate * 2.0).max(1.0), Instant::now())),
        }
    }

    /// Take a token if one is available.
    pub fn try_acquire(&self) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(s.1).as_secs_f64() * self.rate;
        s.0 = (s.0 + refill).min(self.burst);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    /// The key ring.
    pub keys: Arc<KeyState>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Decryption options (same as the reconciler's).
    pub options: Options,
    /// Limiter for verify and reencrypt.
    pub limiter: Arc<RateLimiter>,
    /// Refreshes the per-object gauges before a scrape (set on the leader's context).
    pub refresh_objects: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// The API router.
pub fn api_router(state: AppState) -> Router {
    Router::new()
        .route("/v1/keys", get(keys))
        .route("/v1/verify", post(verify))
        .route("/v1/reencrypt", post(reencrypt))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The metrics router.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<AppState>) -> Response {
    let keys = s.keys.get();
    if s.keys.loaded() && keys.current().is_some() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "key ring not loaded yet\n").into_response()
    }
}

async fn keys(State(s): State<AppState>) -> Response {
    if !s.keys.loaded() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "key ring not loaded yet");
    }
    axum::Json(s.keys.get().keys_document()).into_response()
}

async fn metrics(State(s): State<AppState>) -> Response {
    if let Some(refresh) = &s.refresh_objects {
        refresh();
    }
    s.metrics
        .refresh_keys(&s.keys.get(), jiff::Timestamp::now());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

fn error(code: StatusCode, message: &str) -> Response {
    (code, axum::Json(ErrorBody { error: message })).into_response()
}

/// Input format of a request body, mirrored in the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `application/json`, or a body starting with `{`.
    Json,
    /// Anything else.
    Yaml,
}

/// `POST /v1/reencrypt` accepts an AgeSecret, or this envelope to add recipients the controller
/// does not know (break-glass keys).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReencryptRequest {
    age_secret: AgeSecret,
    #[serde(default)]
    extra_recipients: Vec<String>,
}

/// A request rejected before any decryption: status and message.
pub type Rejection = (StatusCode, String);

fn reject((code, message): Rejection) -> Response {
    error(code, &message)
}

/// Reads a `/v1/verify` or `/v1/reencrypt` body: an AgeSecret (JSON or YAML) or the reencrypt
/// envelope, with its extra recipients and the wire format to answer in. Public for the fuzz
/// targets.
pub fn parse_body(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(AgeSecret, Vec<String>, Wire), Rejection> {
    let yaml_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("yaml"));
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let wire = if yaml_type || first != Some(b'{') {
        Wire::Yaml
    } else {
        Wire::Json
    };
    // kage-core's input limits, checked before a tree is built (docs/security.md).
    let limit = |e: kage_core::Error| (StatusCode::BAD_REQUEST, e.to_string());
    let value: serde_json::Value = match wire {
        Wire::Json => {
            let text = std::str::from_utf8(body).map_err(|_| {
                (
                    StatusCode::BAD_REQUEST,
                    "invalid JSON: not UTF-8".to_string(),
                )
            })?;
            kage_core::limits::scan_json(text).map_err(limit)?;
            serde_json::from_str(text)
                .map_err(|e| (StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))?
        }
        Wire::Yaml => {
            serde_saphyr::from_slice_with_options(body, kage_core::limits::yaml_options()).map_err(
                |e| match kage_core::limits::from_yaml_error(&e) {
                    Some(l) => limit(l),
                    None => (StatusCode::BAD_REQUEST, format!("invalid YAML: {e}")),
                },
            )?
        }
    };
    let bad = |e: serde_json::Error| (StatusCode::BAD_REQUEST, format!("not an AgeSecret: {e}"));
    if value.get("ageSecret").is_some() {
        let req: ReencryptRequest = serde_json::from_value(value).map_err(bad)?;
        Ok((req.age_secret, req.extra_recipients, wire))
    } else {
        if value.get("kind").and_then(|k| k.as_str()) != Some("AgeSecret") {
            return Err((StatusCode::BAD_REQUEST, "expected kind: AgeSecret".into()));
        }
        let ags: AgeSecret = serde_json::from_value(value).map_err(bad)?;
        Ok((ags, Vec::new(), wire))
    }
}

/// The answer of `POST /v1/verify`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse {
    /// True when every value decrypts and its binding matches.
    pub ok: bool,
    /// The status reason the controller would report (`Decrypted`, `UnknownKey`, …).
    pub reason: String,
    /// Details (no secret text).
    pub message: String,
    /// `sealed` or `sops` (absent when the object is invalid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<String>,
    /// Key ids named by the values.
    pub key_ids: Vec<String>,
    /// The data keys that decrypted (names only).
    pub keys: Vec<String>,
}

async fn verify(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !s.limiter.try_acquire() {
        return rate_limited();
    }
    let (ags, _, _) = match parse_body(&headers, &body) {
        Ok(v) => v,
        Err(r) => return reject(r),
    };
    let keys = s.keys.get();
    let key_ids = decrypt::kids(&ags);
    let form = decrypt::validate(&ags).ok().map(|f| match f {
        Form::Sealed => "sealed".to_string(),
        Form::Sops => "sops".to_string(),
    });
    let resp = match decrypt::open(&ags, keys.ring(), s.options) {
        Ok(values) => {
            let names: Vec<String> = values.keys().cloned().collect();
            drop(values);
            VerifyResponse {
                ok: true,
                reason: "Decrypted".into(),
                message: format!("{} values decrypt and match their binding", names.len()),
                form,
                key_ids,
                keys: names,
            }
        }
        Err(f) => VerifyResponse {
            ok: false,
            reason: f.reason.as_str().into(),
            message: f.message,
            form,
            key_ids,
            keys: Vec::new(),
        },
    };
    axum::Json(resp).into_response()
}

fn rate_limited() -> Response {
    let mut r = error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate limit exceeded; retry later",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

async fn reencrypt(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !s.limiter.try_acquire() {
        return rate_limited();
    }
    let (ags, extra, wire) = match parse_body(&headers, &body) {
        Ok(v) => v,
        Err(r) => return reject(r),
    };
    let keys = s.keys.get();
    let Some(current) = keys.current() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no active key yet");
    };
    let mut recipients = vec![current.recipient.clone()];
    for r in &extra {
        match r.parse::<Recipient>() {
            Ok(r) if !recipients.contains(&r) => recipients.push(r),
            Ok(_) => {}
            Err(e) => {
                return error(StatusCode::BAD_REQUEST, &format!("extraRecipients: {e}"));
            }
        }
    }
    match reencrypt_object(&ags, &keys, &recipients, s.options) {
        Ok(out) => respond_object(&out, wire),
        Err(f) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(VerifyResponse {
                ok: false,
                reason: f.reason.as_str().into(),
                message: f.message,
                form: None,
                key_ids: decrypt::kids(&ags),
                keys: Vec::new(),
            }),
        )
            .into_response(),
    }
}

/// Re-seal every value of `ags` to `recipients` (binding and MAC checked first). Pure.
pub fn reencrypt_object(
    ags: &AgeSecret,
    keys: &crate::keys::KeySet,
    recipients: &[Recipient],
    options: Options,
) -> Result<AgeSecret, decrypt::Failure> {
    use crate::plan::Reason;
    let values = decrypt::open(ags, keys.ring(), options)?;
    let mut out = ags.clone();
    out.status = None;
    out.metadata.managed_fields = None;
    match decrypt::validate(ags)? {
        Form::Sealed => {
            let namespace = ags.metadata.namespace.clone().unwrap_or_default();
            let name = ags.metadata.name.clone().unwrap_or_default();
            let scope: sealed::Scope = ags.body().scope;
            for (key, value) in values.iter() {
                let binding = Binding::new(scope, &namespace, &name, key);
                let resealed = sealed::seal(value, &binding, recipients)
                    .map_err(|e| decrypt::Failure::new(Reason::DecryptFailed, e.to_string()))?;
                out.spec.spec.encrypted_data.insert(key.clone(), resealed);
            }
        }
        Form::Sops => {
            drop(values);
            let doc = decrypt::sops_document(ags).ok_or_else(|| {
                decrypt::Failure::new(Reason::InvalidSpec, "unreadable sops block")
            })?;
            let identities: Vec<_> = keys.ring().identities().cloned().collect();
            let file = SopsFile::open(std::slice::from_ref(&doc), &identities)
                .map_err(|e| decrypt::Failure::new(Reason::DecryptFailed, e.to_string()))?;
            let updated = file
                .update_keys(&[recipients.to_vec()], 0)
                .map_err(|e| decrypt::Failure::new(Reason::DecryptFailed, e.to_string()))?;
            if let Some(docs) = updated {
                let v = docs.first().map(|d| d.to_json_value()).unwrap_or_default();
                out.spec.sops = v.get("sops").cloned();
            }
        }
    }
    Ok(out)
}

fn respond_object(ags: &AgeSecret, wire: Wire) -> Response {
    match wire {
        Wire::Json => axum::Json(ags).into_response(),
        Wire::Yaml => {
            let value = match serde_json::to_value(ags) {
                Ok(v) => v,
                Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            };
            match serde_saphyr::to_string(&value) {
                Ok(text) => ([(header::CONTENT_TYPE, "application/yaml")], text).into_response(),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
