//! The HTTP API (every replica) and the metrics endpoint.
//!
//! API port: `GET /v1/keys`, `POST /v1/verify`, `POST /v1/reencrypt`, `GET /healthz`,
//! `GET /readyz`. Metrics port: `GET /metrics`. No response ever carries plaintext, private
//! keys or any text of the request (errors give a position and a kind).
//!
//! verify and reencrypt share a token-bucket rate limit; each request is bounded ([`Limits`]:
//! body size and read time, recipients, values, response size) and decrypts on [`CryptoPool`],
//! a few blocking threads, so that no request can starve the reconciler. Connections are served
//! by [`crate::serve`], which times out slow request headers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use kage_core::api::v1alpha1::AgeSecret;
use kage_core::keys::Recipient;
use kage_core::sealed::{self, Binding};
use kage_core::sops::SopsFile;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::decrypt::{self, Form, Options};
use crate::keystore::KeyState;
use crate::metrics::Metrics;

/// Largest accepted request body (an AgeSecret is far smaller; a Secret is at most 1 MiB).
pub const MAX_BODY: usize = 2 << 20;

/// Bounds of one verify or reencrypt request. An attack run sent one 556 KB request with 8,000
/// `extraRecipients`: 42 s of work, a 59 MB answer, 244 MB resident. Every bound is checked
/// before any decryption.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Request body bytes (413 beyond).
    pub max_body: usize,
    /// Time to receive the whole body (408 beyond): a slow sender holds no worker for long.
    pub body_timeout: Duration,
    /// `extraRecipients` per request (400 beyond).
    pub max_extra_recipients: usize,
    /// Values (`encryptedData`, `data`, `stringData`) per AgeSecret (413 beyond).
    pub max_values: usize,
    /// Response bytes, estimated before the work and checked after it (413 beyond).
    pub max_response: usize,
    /// How long a request waits for a [`CryptoPool`] thread (503 beyond).
    pub crypto_wait: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body: MAX_BODY,
            body_timeout: Duration::from_secs(30),
            max_extra_recipients: 64,
            max_values: 256,
            max_response: 4 << 20,
            crypto_wait: Duration::from_secs(10),
        }
    }
}

/// What one recipient adds to one re-sealed value, at most: an X25519 stanza (~100 bytes)
/// base64-encoded, with slack.
const BYTES_PER_RECIPIENT_PER_VALUE: usize = 200;

/// A bounded pool for the CPU-heavy part of requests: `spawn_blocking` behind a semaphore.
///
/// Decryption and sealing would otherwise run on the async workers that also drive the
/// reconciler and the watches; on the blocking pool, and only a few at a time, they cannot
/// starve them.
#[derive(Debug, Clone)]
pub struct CryptoPool {
    permits: Arc<Semaphore>,
}

impl CryptoPool {
    /// A pool running at most `threads` jobs at once (at least one).
    pub fn new(threads: usize) -> CryptoPool {
        CryptoPool {
            permits: Arc::new(Semaphore::new(threads.max(1))),
        }
    }

    /// Half the cores, at least one: the other half stays for reconciles.
    pub fn for_this_machine() -> CryptoPool {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        CryptoPool::new(cores / 2)
    }

    /// Run `job` on a blocking thread once a permit is free; `None` when none came within
    /// `wait` (or the job panicked).
    pub async fn run<R: Send + 'static>(
        &self,
        wait: Duration,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let permit = tokio::time::timeout(wait, self.permits.clone().acquire_owned())
            .await
            .ok()?
            .ok()?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await
        .ok()
    }
}

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
    /// Bounds of verify and reencrypt requests.
    pub limits: Limits,
    /// Where verify and reencrypt decrypt.
    pub crypto: CryptoPool,
}

/// The API router.
pub fn api_router(state: AppState) -> Router {
    Router::new()
        .route("/v1/keys", get(keys))
        .route("/v1/verify", post(verify))
        .route("/v1/reencrypt", post(reencrypt))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
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

/// Read the body within the size and time limits.
async fn read_body(body: Body, limits: &Limits) -> Result<Bytes, Rejection> {
    let limited = http_body_util::Limited::new(body, limits.max_body);
    match tokio::time::timeout(limits.body_timeout, limited.collect()).await {
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} s",
                limits.body_timeout.as_secs()
            ),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over {} bytes", limits.max_body),
        )),
        Ok(Err(_)) => Err((
            StatusCode::BAD_REQUEST,
            "the request body could not be read".into(),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// What went wrong in a JSON syntax error, without the text around it.
fn json_error(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of input",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Io => "unreadable input",
    };
    format!(
        "invalid JSON: {what} at line {}, column {}",
        e.line(),
        e.column()
    )
}

/// A YAML error as its position and kind. The parser's own message quotes the input (the
/// offending line, and scalars), and input here is an AgeSecret with its values.
fn yaml_error(e: &serde_saphyr::Error) -> String {
    let what = match e.without_snippet() {
        serde_saphyr::Error::Budget { .. } => {
            "over the parser's limits (size, nesting, aliases or documents)"
        }
        _ => "syntax error",
    };
    match e.location() {
        Some(l) if l.line() > 0 => format!(
            "invalid YAML: {what} at line {}, column {}",
            l.line(),
            l.column()
        ),
        _ => format!("invalid YAML: {what}"),
    }
}

/// Why a document is not an AgeSecret: where (field names only) and the kind of mismatch.
/// serde's own messages quote the offending value, which may be a secret.
fn schema_error(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let text = e.inner().to_string();
    let kind = [
        ("missing field", "a required field is missing"),
        ("unknown field", "unknown field"),
        ("duplicate field", "duplicate field"),
        ("invalid type", "wrong type"),
        ("invalid value", "invalid value"),
        ("invalid length", "wrong length"),
        ("unknown variant", "not one of the allowed values"),
    ]
    .iter()
    .find(|(prefix, _)| text.starts_with(prefix))
    .map_or("does not match the schema", |(_, k)| k);
    let path = e.path().to_string();
    if path.is_empty() || path == "." {
        format!("not an AgeSecret: {kind}")
    } else {
        format!("not an AgeSecret: {kind} at {path}")
    }
}

fn from_value<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, Rejection> {
    serde_path_to_error::deserialize(value).map_err(|e| (StatusCode::BAD_REQUEST, schema_error(&e)))
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
            serde_json::from_str(text).map_err(|e| (StatusCode::BAD_REQUEST, json_error(&e)))?
        }
        Wire::Yaml => {
            serde_saphyr::from_slice_with_options(body, kage_core::limits::yaml_options()).map_err(
                |e| match kage_core::limits::from_yaml_error(&e) {
                    Some(l) => limit(l),
                    None => (StatusCode::BAD_REQUEST, yaml_error(&e)),
                },
            )?
        }
    };
    if value.get("ageSecret").is_some() {
        let req: ReencryptRequest = from_value(value)?;
        Ok((req.age_secret, req.extra_recipients, wire))
    } else {
        if value.get("kind").and_then(|k| k.as_str()) != Some(kage_core::k8s::KIND) {
            return Err((StatusCode::BAD_REQUEST, "expected kind: AgeSecret".into()));
        }
        let ags: AgeSecret = from_value(value)?;
        Ok((ags, Vec::new(), wire))
    }
}

/// Read, parse and bound one verify or reencrypt request.
async fn request(
    s: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(AgeSecret, Vec<String>, Wire, usize), Rejection> {
    let bytes = read_body(body, &s.limits).await?;
    let (ags, extra, wire) = parse_body(headers, &bytes)?;
    if extra.len() > s.limits.max_extra_recipients {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "extraRecipients: {} given, at most {} per request",
                extra.len(),
                s.limits.max_extra_recipients
            ),
        ));
    }
    let spec = ags.body();
    let values = spec.encrypted_data.len() + spec.data.len() + spec.string_data.len();
    if values > s.limits.max_values {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{values} values, at most {} per request",
                s.limits.max_values
            ),
        ));
    }
    Ok((ags, extra, wire, bytes.len()))
}

fn busy() -> Response {
    // Also what a panicked job answers: nothing of it reaches the client.
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy: every decryption thread is in use; retry later",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
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

async fn verify(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    if !s.limiter.try_acquire() {
        return rate_limited();
    }
    let (ags, _, _, _) = match request(&s, &headers, body).await {
        Ok(v) => v,
        Err(r) => return reject(r),
    };
    let keys = s.keys.get();
    let options = s.options;
    let job = move || {
        let key_ids = decrypt::kids(&ags);
        let form = decrypt::validate(&ags).ok().map(|f| match f {
            Form::Sealed => "sealed".to_string(),
            Form::Sops => "sops".to_string(),
        });
        match decrypt::open(&ags, keys.ring(), options) {
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
        }
    };
    match s.crypto.run(s.limits.crypto_wait, job).await {
        Some(resp) => axum::Json(resp).into_response(),
        None => busy(),
    }
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

async fn reencrypt(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    if !s.limiter.try_acquire() {
        return rate_limited();
    }
    let (ags, extra, wire, body_len) = match request(&s, &headers, body).await {
        Ok(v) => v,
        Err(r) => return reject(r),
    };
    let keys = s.keys.get();
    let Some(current) = keys.current() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no active key yet");
    };
    let mut recipients = vec![current.recipient.clone()];
    for (i, r) in extra.iter().enumerate() {
        match r.parse::<Recipient>() {
            Ok(r) if !recipients.contains(&r) => recipients.push(r),
            Ok(_) => {}
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("extraRecipients[{i}] is not an age X25519 recipient (age1…)"),
                );
            }
        }
    }
    // Refuse what would answer with too much before doing the work.
    let spec = ags.body();
    let values = spec.encrypted_data.len() + spec.data.len() + spec.string_data.len();
    let estimate = body_len + values.max(1) * recipients.len() * BYTES_PER_RECIPIENT_PER_VALUE;
    if estimate > s.limits.max_response {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the answer would be about {estimate} bytes ({values} values × {} recipients), over the limit of {}; send fewer values or recipients per request",
                recipients.len(),
                s.limits.max_response
            ),
        );
    }
    let options = s.options;
    let max_response = s.limits.max_response;
    let job = move || match reencrypt_object(&ags, &keys, &recipients, options) {
        Ok(out) => respond_object(&out, wire, max_response),
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
    };
    s.crypto
        .run(s.limits.crypto_wait, job)
        .await
        .unwrap_or_else(busy)
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

/// The re-sealed object as the answer (same format as the request), refused when it is over
/// `max_response` bytes.
fn respond_object(ags: &AgeSecret, wire: Wire, max_response: usize) -> Response {
    let rendered = match wire {
        Wire::Json => serde_json::to_vec(ags)
            .map(|b| ("application/json", b))
            .map_err(|e| e.to_string()),
        Wire::Yaml => serde_json::to_value(ags)
            .map_err(|e| e.to_string())
            .and_then(|v| serde_saphyr::to_string(&v).map_err(|e| e.to_string()))
            .map(|t| ("application/yaml", t.into_bytes())),
    };
    match rendered {
        Ok((_, body)) if body.len() > max_response => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the answer is {} bytes, over the limit of {max_response}; send fewer values or recipients per request",
                body.len()
            ),
        ),
        Ok((content_type, body)) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
