//! Tests of the HTTP API through the router (no network).

use super::*;
use crate::fixtures::{AgeSecretFixture, TestKeys};
use crate::keys::{KeyEntry, KeySet, KeyStatus};
use axum::body::Body;
use axum::http::Request;
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
    let (code, _, _) = call(api_router(s), req).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
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
