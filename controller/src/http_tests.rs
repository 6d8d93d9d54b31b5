//! Tests of the HTTP API through the router (no network).

use super::*;
use crate::fixtures::{AgeSecretFixture, TestKeys};
use crate::keys::{KeyEntry, KeySet, KeyStatus};
use axum::body::Body;
use axum::http::Request;
use futures::StreamExt;
use http_body_util::BodyExt;
use kage_core::keys::{Identity, KeyRing};
use tower::ServiceExt;

const PLAIN: &str = "very-secret-plaintext";

fn keyset(ids: &[&Identity]) -> KeySet {
    KeySet::from_entries(ids.iter().enumerate().map(|(i, id)| KeyEntry {
        identity: (*id).clone(),
        created: jiff::Timestamp::from_second(1_700_000_000 + i as i64).unwrap(),
        status: KeyStatus::Active,
        secret_name: format!("k{i}"),
        rotation_token: None,
    }))
}

fn state(keys: Option<KeySet>, rate: u32) -> AppState {
    let ks = KeyState::default();
    if let Some(k) = keys {
        ks.set(k);
    }
    AppState {
        keys: Arc::new(ks),
        metrics: Arc::new(Metrics::new()),
        options: Options::default(),
        limiter: Arc::new(RateLimiter::new(rate)),
        refresh_objects: None,
        limits: Limits::default(),
        crypto: CryptoPool::new(2),
    }
}

async fn call(router: Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn post_json(path: &str, v: &impl Serialize) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(v).unwrap()))
        .unwrap()
}

#[tokio::test]
async fn probes_and_keys() {
    let s = state(None, 10);
    let (code, _, _) = call(api_router(s.clone()), get("/healthz")).await;
    assert_eq!(code, StatusCode::OK);
    let (code, _, _) = call(api_router(s.clone()), get("/readyz")).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    let (code, _, _) = call(api_router(s.clone()), get("/v1/keys")).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);

    let id = Identity::generate();
    s.keys.set(keyset(&[&id]));
    let (code, _, _) = call(api_router(s.clone()), get("/readyz")).await;
    assert_eq!(code, StatusCode::OK);
    let (code, headers, body) = call(api_router(s), get("/v1/keys")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["keys"][0]["kid"], id.kid().to_string());
    assert_eq!(v["keys"][0]["recipient"], id.recipient().to_string());
    assert_eq!(v["keys"][0]["current"], true);
    assert!(!body.contains("AGE-SECRET-KEY"));
}

#[tokio::test]
async fn verify_ok_returns_no_plaintext() {
    let k = TestKeys::new();
    let s = state(Some(keyset(&[&k.id])), 10);
    let ags = AgeSecret::test()
        .sealed("password", PLAIN.as_bytes(), &k.id)
        .sealed("user", b"admin", &k.id);
    let (code, _, body) = call(api_router(s), post_json("/v1/verify", &ags)).await;
    assert_eq!(code, StatusCode::OK);
    assert!(!body.contains(PLAIN));
    assert!(!body.contains("admin\""));
    let r: VerifyResponse = serde_json::from_str(&body).unwrap();
    assert!(r.ok);
    assert_eq!(r.reason, "Decrypted");
    assert_eq!(r.form.as_deref(), Some("sealed"));
    assert_eq!(r.keys, ["password", "user"]);
    assert_eq!(r.key_ids, [k.id.kid().to_string()]);
}

#[tokio::test]
async fn verify_reports_failures() {
    let k = TestKeys::new();
    let s = state(Some(keyset(&[&k.id])), 10);
    let other = Identity::generate();
    let ags = AgeSecret::test().sealed("a", PLAIN.as_bytes(), &other);
    let (code, _, body) = call(api_router(s.clone()), post_json("/v1/verify", &ags)).await;
    assert_eq!(code, StatusCode::OK);
    let r: VerifyResponse = serde_json::from_str(&body).unwrap();
    assert!(!r.ok);
    assert_eq!(r.reason, "UnknownKey");
    assert!(r.message.contains(other.kid().as_str()));
    // Copied to another name: ScopeMismatch.
    let mut moved = AgeSecret::test().sealed("a", PLAIN.as_bytes(), &k.id);
    moved.metadata.name = Some("elsewhere".into());
    let (_, _, body) = call(api_router(s), post_json("/v1/verify", &moved)).await;
    let r: VerifyResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(r.reason, "ScopeMismatch");
    assert!(!body.contains(PLAIN));
}

#[tokio::test]
async fn verify_accepts_yaml() {
    let k = TestKeys::new();
    let s = state(Some(keyset(&[&k.id])), 10);
    let ags = AgeSecret::test().sealed("a", PLAIN.as_bytes(), &k.id);
    let yaml = serde_saphyr::to_string(&serde_json::to_value(&ags).unwrap()).unwrap();
    let req = Request::post("/v1/verify")
        .header("content-type", "application/yaml")
        .body(Body::from(yaml))
        .unwrap();
    let (code, _, body) = call(api_router(s), req).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let r: VerifyResponse = serde_json::from_str(&body).unwrap();
    assert!(r.ok, "{body}");
}

#[tokio::test]
async fn bad_requests() {
    let s = state(Some(KeySet::default()), 10);
    let req = Request::post("/v1/verify")
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let (code, _, _) = call(api_router(s.clone()), req).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _, body) = call(
        api_router(s.clone()),
        post_json("/v1/verify", &serde_json::json!({"kind": "Secret"})),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body.contains("AgeSecret"));
    // Oversized body.
    let big = vec![b' '; MAX_BODY + 1];
    let req = Request::post("/v1/verify")
        .header("content-type", "application/json")
        .body(Body::from(big))
        .unwrap();
    let (code, _, body) = call(api_router(s), req).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body.contains("\"error\""), "{body}");
}

#[tokio::test]
async fn rate_limited_after_burst() {
    let k = TestKeys::new();
    let s = state(Some(keyset(&[&k.id])), 1); // burst of 2
    let ags = AgeSecret::test();
    let mut codes = Vec::new();
    for _ in 0..4 {
        let (code, headers, _) = call(api_router(s.clone()), post_json("/v1/verify", &ags)).await;
        if code == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(headers["retry-after"], "1");
        }
        codes.push(code);
    }
    assert_eq!(codes[0], StatusCode::OK);
    assert_eq!(codes[1], StatusCode::OK);
    assert_eq!(codes[3], StatusCode::TOO_MANY_REQUESTS);
    // Probes are not limited.
    let (code, _, _) = call(api_router(s), get("/healthz")).await;
    assert_eq!(code, StatusCode::OK);
}

#[test]
fn rate_limiter_zero_is_unlimited() {
    let l = RateLimiter::new(0);
    assert!((0..100).all(|_| l.try_acquire()));
}

#[tokio::test]
async fn reencrypt_sealed_to_current_key() {
    let old = Identity::generate();
    let new = Identity::generate();
    // `new` is newer, hence current.
    let s = state(Some(keyset(&[&old, &new])), 10);
    let ags = AgeSecret::test().sealed("a", PLAIN.as_bytes(), &old);
    let (code, _, body) = call(api_router(s), post_json("/v1/reencrypt", &ags)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert!(!body.contains(PLAIN));
    let out: AgeSecret = serde_json::from_str(&body).unwrap();
    let v = &out.body().encrypted_data["a"];
    assert_ne!(v, &ags.body().encrypted_data["a"]);
    assert_eq!(
        sealed::kids_of(v).unwrap(),
        vec![new.kid()],
        "sealed to the current key only"
    );
    let ring = KeyRing::from_identities([new]);
    let b = Binding::new(sealed::Scope::Strict, "prod", "db", "a");
    assert_eq!(&sealed::open(v, &b, &ring).unwrap()[..], PLAIN.as_bytes());
}

#[tokio::test]
async fn reencrypt_with_extra_recipients_and_yaml() {
    let k = TestKeys::new();
    let extra = Identity::generate();
    let s = state(Some(keyset(&[&k.id])), 10);
    let ags = AgeSecret::test().sealed("a", PLAIN.as_bytes(), &k.id);
    let envelope = serde_json::json!({
        "ageSecret": ags,
        "extraRecipients": [extra.recipient().to_string()],
    });
    let (code, _, body) = call(api_router(s.clone()), post_json("/v1/reencrypt", &envelope)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let out: AgeSecret = serde_json::from_str(&body).unwrap();
    let mut kids = sealed::kids_of(&out.body().encrypted_data["a"]).unwrap();
    kids.sort();
    let mut want = vec![k.id.kid(), extra.kid()];
    want.sort();
    assert_eq!(kids, want);

    let yaml = serde_saphyr::to_string(&serde_json::to_value(&ags).unwrap()).unwrap();
    let req = Request::post("/v1/reencrypt")
        .header("content-type", "application/yaml")
        .body(Body::from(yaml))
        .unwrap();
    let (code, headers, body) = call(api_router(s.clone()), req).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(headers["content-type"], "application/yaml");
    assert!(body.contains("kind: AgeSecret"));

    let bad = serde_json::json!({"ageSecret": ags, "extraRecipients": ["nope"]});
    let (code, _, _) = call(api_router(s), post_json("/v1/reencrypt", &bad)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn reencrypt_refuses_what_it_cannot_verify() {
    let k = TestKeys::new();
    let s = state(Some(keyset(&[&k.id])), 10);
    let ags = AgeSecret::test().sealed("a", PLAIN.as_bytes(), &Identity::generate());
    let (code, _, body) = call(api_router(s), post_json("/v1/reencrypt", &ags)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("UnknownKey"));
}

#[tokio::test]
async fn reencrypt_sops_updates_recipients() {
    let old = Identity::generate();
    let new = Identity::generate();
    let s = state(Some(keyset(&[&old, &new])), 10);
    let binding = sealed::binding_text(sealed::Scope::Strict, "prod", "db");
    let ags = AgeSecret::test().sops(
        &[("a", PLAIN.as_bytes())],
        &[("b", "x")],
        Some(binding),
        &old,
    );
    let (code, _, body) = call(api_router(s), post_json("/v1/reencrypt", &ags)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert!(!body.contains(PLAIN));
    let out: AgeSecret = serde_json::from_str(&body).unwrap();
    assert_eq!(decrypt::kids(&out), vec![new.kid().to_string()]);
    // Still decrypts (MAC intact) with the new key alone.
    let ring = KeyRing::from_identities([new]);
    let values = decrypt::open(&out, &ring, Options::default()).unwrap();
    assert_eq!(&values["a"][..], PLAIN.as_bytes());
}

#[tokio::test]
async fn metrics_endpoint() {
    let k = TestKeys::new();
    let s = state(Some(keyset(&[&k.id])), 10);
    let (code, headers, body) = call(metrics_router(s), get("/metrics")).await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(body.contains("kage_keys{status=\"active\"} 1"));
    assert!(body.contains("kage_build_info"));
    assert!(body.ends_with("# EOF\n"));
}

// ---- bounds of one request (the amplification finding) ----

fn error_of(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).expect("a JSON error body");
    v["error"].as_str().expect("an error field").to_string()
}

#[tokio::test]
async fn extra_recipients_are_bounded() {
    let k = TestKeys::new();
    let s = state(Some(keyset(&[&k.id])), 0);
    let ags = AgeSecret::test().sealed("a", PLAIN.as_bytes(), &k.id);
    let max = Limits::default().max_extra_recipients;
    let recipients: Vec<String> = (0..=max)
        .map(|_| Identity::generate().recipient().to_string())
        .collect();
    let envelope = serde_json::json!({"ageSecret": ags, "extraRecipients": recipients});
    let (code, _, body) = call(api_router(s.clone()), post_json("/v1/reencrypt", &envelope)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        error_of(&body),
        format!(
            "extraRecipients: {} given, at most {max} per request",
            max + 1
        )
    );
    // The attack's shape: 8,000 of them, refused before any of them is parsed.
    let many = vec!["age1x".to_string(); 8000];
    let envelope = serde_json::json!({"ageSecret": ags, "extraRecipients": many});
    let (code, _, _) = call(api_router(s.clone()), post_json("/v1/reencrypt", &envelope)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    // At the limit: accepted.
    let envelope = serde_json::json!({"ageSecret": ags, "extraRecipients": recipients[..max]});
    let (code, _, body) = call(api_router(s), post_json("/v1/reencrypt", &envelope)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn values_per_request_are_bounded() {
    let s = state(Some(keyset(&[&Identity::generate()])), 0);
    let max = Limits::default().max_values;
    let mut ags = AgeSecret::test();
    for i in 0..=max {
        ags = ags.raw_value(&format!("k{i}"), "kage:v1:00:AA");
    }
    for path in ["/v1/verify", "/v1/reencrypt"] {
        let (code, _, body) = call(api_router(s.clone()), post_json(path, &ags)).await;
        assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {body}");
        assert_eq!(
            error_of(&body),
            format!("{} values, at most {max} per request", max + 1)
        );
    }
}

#[tokio::test]
async fn response_size_is_bounded_before_the_work() {
    let k = TestKeys::new();
    let mut s = state(Some(keyset(&[&k.id])), 0);
    s.limits.max_response = 8_000;
    let ags = AgeSecret::test().sealed("a", PLAIN.as_bytes(), &k.id);
    let recipients: Vec<String> = (0..40)
        .map(|_| Identity::generate().recipient().to_string())
        .collect();
    let envelope = serde_json::json!({"ageSecret": ags, "extraRecipients": recipients});
    let (code, _, body) = call(api_router(s), post_json("/v1/reencrypt", &envelope)).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(
        error_of(&body).starts_with("the answer would be about"),
        "{body}"
    );
}

#[test]
fn response_size_is_checked_after_the_work() {
    let ags = AgeSecret::test().raw_value("a", "kage:v1:00:AA");
    let resp = respond_object(&ags, Wire::Json, 10);
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let resp = respond_object(&ags, Wire::Json, 1 << 20);
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn slow_bodies_time_out() {
    let mut s = state(Some(KeySet::default()), 0);
    s.limits.body_timeout = Duration::from_millis(100);
    // A few bytes, then nothing: the sender never finishes.
    let chunks = futures::stream::once(async {
        Ok::<_, std::io::Error>(Bytes::from_static(b"{\"kind\": "))
    })
    .chain(futures::stream::pending());
    let req = Request::post("/v1/verify")
        .header("content-type", "application/json")
        .body(Body::from_stream(chunks))
        .unwrap();
    let (code, _, body) = call(api_router(s), req).await;
    assert_eq!(code, StatusCode::REQUEST_TIMEOUT, "{body}");
    assert!(error_of(&body).contains("did not arrive"), "{body}");
}

#[tokio::test]
async fn crypto_pool_is_bounded() {
    let pool = CryptoPool::new(1);
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let busy = {
        let pool = pool.clone();
        tokio::spawn(async move {
            pool.run(Duration::from_secs(60), move || {
                let _ = started_tx.send(());
                let _ = wait.recv();
                1
            })
            .await
        })
    };
    started.await.unwrap();
    // The only thread is taken: the next job gets no permit.
    assert_eq!(pool.run(Duration::from_millis(20), || 2).await, None);
    release.send(()).unwrap();
    assert_eq!(busy.await.unwrap(), Some(1));
    assert_eq!(pool.run(Duration::from_secs(60), || 3).await, Some(3));
}

// ---- errors name a position and a kind, never the request's text ----

#[tokio::test]
async fn errors_never_quote_the_request() {
    let s = state(Some(KeySet::default()), 0);
    let secret = "hunter2-do-not-echo";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "application/yaml",
            format!(
                "apiVersion: kage.dev/v1alpha1\nkind: AgeSecret\nspec:\n  encryptedData: {{a: [{secret}\n"
            ),
            "invalid YAML",
        ),
        (
            "application/yaml",
            format!("kind: AgeSecret\nspec:\n  a: {secret}\n  b: \"{secret}\n"),
            "invalid YAML",
        ),
        (
            "application/json",
            format!(
                "{{\"kind\": \"AgeSecret\", \"spec\": {{\"encryptedData\": {{\"a\": {secret}}}}}}}"
            ),
            "invalid JSON",
        ),
        (
            "application/json",
            format!(
                "{{\"apiVersion\": \"kage.dev/v1alpha1\", \"kind\": \"AgeSecret\", \"metadata\": {{\"name\": \"db\"}}, \"spec\": \"{secret}\"}}"
            ),
            "not an AgeSecret: wrong type",
        ),
        (
            "application/json",
            format!(
                "{{\"apiVersion\": \"kage.dev/v1alpha1\", \"kind\": \"AgeSecret\", \"metadata\": {{\"name\": \"db\"}}, \"spec\": {{\"scope\": \"{secret}\"}}}}"
            ),
            "not an AgeSecret: not one of the allowed values",
        ),
        (
            "application/yaml",
            format!("kind: AgeSecret\nspec: {{}}\n---\nkind: AgeSecret\nspec: {{a: {secret}}}\n"),
            "invalid YAML",
        ),
    ];
    for (content_type, text, want) in cases {
        let req = Request::post("/v1/verify")
            .header("content-type", content_type)
            .body(Body::from(text.clone()))
            .unwrap();
        let (code, _, body) = call(api_router(s.clone()), req).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{text}: {body}");
        let err = error_of(&body);
        assert!(err.starts_with(want), "{text}: {err}");
        assert!(!body.contains(secret), "{text}: {body}");
        assert!(!body.contains("encryptedData: {"), "{text}: {body}");
    }
    // A bad extra recipient is named by its index, not quoted.
    let ags = AgeSecret::test();
    let bad = serde_json::json!({"ageSecret": ags, "extraRecipients": [secret]});
    let k = TestKeys::new();
    let s = state(Some(keyset(&[&k.id])), 0);
    let (code, _, body) = call(api_router(s), post_json("/v1/reencrypt", &bad)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_of(&body),
        "extraRecipients[0] is not an age X25519 recipient (age1…)"
    );
}
