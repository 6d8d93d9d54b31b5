//! Mock API server scenarios for `reconcile` (house style rule 14, tier 2): a client on
//! `tower_test::mock::pair`, an `ApiServerVerifier` that checks method, URI (including
//! `fieldManager`) and JSON body of each call in order, and `timeout_after_1s` for calls that
//! never arrive. A call the scenario does not expect makes `reconcile` fail.

use super::*;
use crate::fixtures::{AgeSecretFixture, TestKeys, owner_ref, secret};
use crate::keys::{KeyEntry, KeySet, KeyStatus};
use base64::Engine as _;
use http::{Method, Request, Response, StatusCode};
use kage_core::keys::Identity;
use kube::client::Body;
use serde_json::{Value, json};

const PLAIN: &[u8] = b"mock-plaintext-value";

type ApiServerHandle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

struct ApiServerVerifier(ApiServerHandle);

/// One expected call and the answer to give.
struct Step {
    method: Method,
    path: &'static str,
    query: &'static [&'static str],
    check: Box<dyn Fn(&Value) + Send>,
    status: u16,
    response: Value,
}

fn step(
    method: Method,
    path: &'static str,
    query: &'static [&'static str],
    check: impl Fn(&Value) + Send + 'static,
    status: u16,
    response: Value,
) -> Step {
    Step {
        method,
        path,
        query,
        check: Box::new(check),
        status,
        response,
    }
}

fn no_check(_: &Value) {}

impl ApiServerVerifier {
    fn run(mut self, steps: Vec<Step>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            for (i, s) in steps.into_iter().enumerate() {
                let (request, send) = self
                    .0
                    .next_request()
                    .await
                    .unwrap_or_else(|| panic!("call {i} ({} {}) never came", s.method, s.path));
                assert_eq!(request.method(), s.method, "call {i}");
                let uri = request.uri().clone();
                assert_eq!(uri.path(), s.path, "call {i}");
                let query = uri.query().unwrap_or_default();
                for q in s.query {
                    assert!(query.contains(q), "call {i}: {query:?} lacks {q:?}");
                }
                let bytes = request.into_body().collect_bytes().await.unwrap();
                let body: Value = if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).unwrap()
                };
                (s.check)(&body);
                let resp = Response::builder()
                    .status(StatusCode::from_u16(s.status).unwrap())
                    .body(Body::from(serde_json::to_vec(&s.response).unwrap()))
                    .unwrap();
                send.send_response(resp);
            }
        })
    }
}

async fn timeout_after_1s(handle: tokio::task::JoinHandle<()>) {
    tokio::time::timeout(std::time::Duration::from_secs(1), handle)
        .await
        .expect("timeout on mock apiserver")
        .expect("scenario succeeded")
}

impl Context {
    /// A context on a mock client, with `keys` as the key ring.
    fn test(keys: KeySet) -> (Arc<Context>, ApiServerVerifier) {
        let (mock_service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(mock_service, "default");
        let ctx = Context::new(
            client,
            Arc::new(KeyState::with_keys(keys)),
            Arc::new(Metrics::new()),
            Options::default(),
            "kage-system".into(),
            Some("test-pod".into()),
        );
        (Arc::new(ctx), ApiServerVerifier(handle))
    }
}

fn keyset(id: &Identity) -> KeySet {
    KeySet::from_entries([KeyEntry {
        identity: id.clone(),
        created: jiff::Timestamp::UNIX_EPOCH,
        status: KeyStatus::Active,
        secret_name: "kage-key".into(),
        rotation_token: None,
    }])
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

const SECRET_PATH: &str = "/api/v1/namespaces/prod/secrets/db";
const STATUS_PATH: &str = "/apis/kage.dev/v1alpha1/namespaces/prod/agesecrets/db/status";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/prod/events";
const APPLY: &[&str] = &["fieldManager=kage-controller", "force=true"];

fn assert_no_plaintext(v: &Value) {
    let s = v.to_string();
    assert!(!s.contains(std::str::from_utf8(PLAIN).unwrap()));
    assert!(
        !s.contains(&b64(PLAIN)),
        "base64 plaintext outside the Secret"
    );
}

fn event_check(reason: &'static str, type_: &'static str) -> impl Fn(&Value) + Send {
    move |b: &Value| {
        assert_eq!(b["reason"], reason);
        assert_eq!(b["type"], type_);
        assert_eq!(b["reportingController"], "kage-controller");
        assert_eq!(b["regarding"]["kind"], "AgeSecret");
        assert_eq!(b["regarding"]["name"], "db");
        assert_no_plaintext(b);
    }
}

fn status_check(status: &'static str, reason: &'static str) -> impl Fn(&Value) + Send {
    move |b: &Value| {
        assert_eq!(b["apiVersion"], "kage.dev/v1alpha1");
        assert_eq!(b["kind"], "AgeSecret");
        assert_eq!(b["metadata"]["name"], "db");
        assert_eq!(b["metadata"]["namespace"], "prod");
        let c = &b["status"]["conditions"][0];
        assert_eq!(c["type"], "Ready");
        assert_eq!(c["status"], status);
        assert_eq!(c["reason"], reason);
        assert_eq!(b["status"]["observedGeneration"], 1);
        assert_no_plaintext(b);
    }
}

#[tokio::test]
async fn creates_the_secret_then_status_then_event() {
    let k = TestKeys::new();
    let (ctx, server) = Context::test(keyset(&k.id));
    let ags = AgeSecret::test().sealed("password", PLAIN, &k.id);
    let steps = vec![
        step(Method::GET, SECRET_PATH, &[], no_check, 404, not_found()),
        step(
            Method::PATCH,
            SECRET_PATH,
            APPLY,
            |b| {
                assert_eq!(b["apiVersion"], "v1");
                assert_eq!(b["kind"], "Secret");
                assert_eq!(b["data"]["password"], b64(PLAIN));
                assert_eq!(b["type"], "Opaque");
                assert_eq!(
                    b["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                    "kage"
                );
                assert_eq!(b["metadata"]["annotations"]["kage.dev/managed"], "true");
                let o = &b["metadata"]["ownerReferences"][0];
                assert_eq!(o["kind"], "AgeSecret");
                assert_eq!(o["uid"], "uid-db");
                assert_eq!(o["controller"], true);
            },
            200,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "prod"}}),
        ),
        step(
            Method::PATCH,
            STATUS_PATH,
            APPLY,
            status_check("True", "Decrypted"),
            200,
            serde_json::to_value(&ags).unwrap(),
        ),
        step(
            Method::POST,
            EVENTS_PATH,
            &[],
            event_check("SecretCreated", "Normal"),
            201,
            json!({}),
        ),
    ];
    let srv = server.run(steps);
    let action = reconcile(Arc::new(ags), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::requeue(REQUEUE_READY));
    timeout_after_1s(srv).await;
    assert!(
        ctx.metrics
            .encode()
            .contains("kage_reconciles_total{result=\"ready\"} 1")
    );
}

#[tokio::test]
async fn foreign_secret_is_never_touched() {
    let k = TestKeys::new();
    let (ctx, server) = Context::test(keyset(&k.id));
    let ags = AgeSecret::test().sealed("password", PLAIN, &k.id);
    let foreign = secret(&[("password", b"theirs")], |_| {});
    let steps = vec![
        step(
            Method::GET,
            SECRET_PATH,
            &[],
            no_check,
            200,
            serde_json::to_value(&foreign).unwrap(),
        ),
        // No PATCH of the Secret: straight to the status.
        step(
            Method::PATCH,
            STATUS_PATH,
            APPLY,
            status_check("False", "SecretNotManaged"),
            200,
            serde_json::to_value(&ags).unwrap(),
        ),
        step(
            Method::POST,
            EVENTS_PATH,
            &[],
            event_check("SecretNotManaged", "Warning"),
            201,
            json!({}),
        ),
    ];
    let srv = server.run(steps);
    let action = reconcile(Arc::new(ags), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(REQUEUE_NOT_MANAGED));
    timeout_after_1s(srv).await;
}

#[tokio::test]
async fn nothing_written_when_nothing_changed() {
    let k = TestKeys::new();
    let (ctx, server) = Context::test(keyset(&k.id));
    let ags = AgeSecret::test().sealed("password", PLAIN, &k.id);
    // What a previous reconcile produced.
    let p = crate::plan::plan(&Inputs {
        ags: &ags,
        ring: ctx.keys.get().ring(),
        existing: None,
        options: Options::default(),
        controller_namespace: "kage-system",
        now: Timestamp::now(),
    });
    let SecretAction::Apply { secret, .. } = p.secret else {
        panic!("apply expected")
    };
    let ags = ags.with_status(p.status);
    let steps = vec![step(
        Method::GET,
        SECRET_PATH,
        &[],
        no_check,
        200,
        serde_json::to_value(&*secret).unwrap(),
    )];
    let srv = server.run(steps);
    // Any further call (apply, status, event) would fail: the server is gone after the GET.
    let action = reconcile(Arc::new(ags), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(REQUEUE_READY));
    timeout_after_1s(srv).await;
}

#[tokio::test]
async fn failure_leaves_the_secret_exactly_as_it_was() {
    let k = TestKeys::new();
    let (ctx, server) = Context::test(keyset(&k.id));
    let ags = AgeSecret::test().sealed("password", PLAIN, &Identity::generate());
    let existing = secret(&[("password", b"previous")], |m| {
        m.owner_references = Some(vec![owner_ref()])
    });
    let steps = vec![
        step(
            Method::GET,
            SECRET_PATH,
            &[],
            no_check,
            200,
            serde_json::to_value(&existing).unwrap(),
        ),
        step(
            Method::PATCH,
            STATUS_PATH,
            APPLY,
            status_check("False", "UnknownKey"),
            200,
            serde_json::to_value(&ags).unwrap(),
        ),
        step(
            Method::POST,
            EVENTS_PATH,
            &[],
            event_check("UnknownKey", "Warning"),
            201,
            json!({}),
        ),
    ];
    let srv = server.run(steps);
    let ags = Arc::new(ags);
    let action = reconcile(ags.clone(), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::requeue(REQUEUE_KEY_FAILURE));
    timeout_after_1s(srv).await;
    // Remembered for an immediate retry when the key ring changes.
    assert_eq!(
        ctx.key_failures_in(Some("prod")),
        vec![ObjectRef::from_obj(ags.as_ref())]
    );
    assert!(ctx.key_failures_in(Some("other")).is_empty());
    assert!(
        ctx.metrics
            .encode()
            .contains("kage_reconcile_errors_total{reason=\"unknown_key\"} 1")
    );
}

#[tokio::test]
async fn drift_is_restored_and_foreign_keys_removed() {
    let k = TestKeys::new();
    let (ctx, server) = Context::test(keyset(&k.id));
    let ags = AgeSecret::test().sealed("password", PLAIN, &k.id);
    let drifted = secret(&[("password", b"edited"), ("extra", b"x")], |m| {
        m.owner_references = Some(vec![owner_ref()])
    });
    let steps = vec![
        step(
            Method::GET,
            SECRET_PATH,
            &[],
            no_check,
            200,
            serde_json::to_value(&drifted).unwrap(),
        ),
        step(
            Method::PATCH,
            SECRET_PATH,
            APPLY,
            |b| {
                assert_eq!(b["data"]["password"], b64(PLAIN));
                assert!(b["data"].get("extra").is_none());
            },
            200,
            json!({}),
        ),
        step(
            Method::PATCH,
            SECRET_PATH,
            &[],
            |b| {
                assert_eq!(b["data"]["extra"], Value::Null);
                assert_eq!(b["data"].as_object().unwrap().len(), 1);
            },
            200,
            json!({}),
        ),
        step(
            Method::PATCH,
            STATUS_PATH,
            APPLY,
            status_check("True", "Decrypted"),
            200,
            serde_json::to_value(&ags).unwrap(),
        ),
        step(
            Method::POST,
            EVENTS_PATH,
            &[],
            event_check("SecretUpdated", "Normal"),
            201,
            json!({}),
        ),
    ];
    let srv = server.run(steps);
    reconcile(Arc::new(ags), ctx).await.unwrap();
    timeout_after_1s(srv).await;
}

#[tokio::test]
async fn api_errors_are_errors_with_a_fixed_label() {
    let k = TestKeys::new();
    let (ctx, server) = Context::test(keyset(&k.id));
    let ags = Arc::new(AgeSecret::test().sealed("password", PLAIN, &k.id));
    let steps = vec![step(
        Method::GET,
        SECRET_PATH,
        &[],
        no_check,
        500,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 500, "message": "etcd on fire"}),
    )];
    let srv = server.run(steps);
    let err = reconcile(ags.clone(), ctx.clone()).await.unwrap_err();
    timeout_after_1s(srv).await;
    assert_eq!(err.metric_label(), "kube_api");
    let first = error_policy(ags.clone(), &err, ctx.clone());
    let second = error_policy(ags, &err, ctx.clone());
    assert_eq!(first, Action::requeue(Duration::from_millis(500)));
    assert_eq!(second, Action::requeue(Duration::from_millis(1000)));
    let text = ctx.metrics.encode();
    assert!(text.contains("kage_reconcile_errors_total{reason=\"kube_api\"} 2"));
    assert!(!text.contains("etcd on fire"));
}

#[tokio::test]
async fn suspended_writes_status_only() {
    let k = TestKeys::new();
    let (ctx, server) = Context::test(keyset(&k.id));
    let ags = AgeSecret::test()
        .sealed("password", PLAIN, &k.id)
        .suspended();
    let steps = vec![
        step(Method::GET, SECRET_PATH, &[], no_check, 404, not_found()),
        step(
            Method::PATCH,
            STATUS_PATH,
            APPLY,
            status_check("False", "Suspended"),
            200,
            serde_json::to_value(&ags).unwrap(),
        ),
        step(
            Method::POST,
            EVENTS_PATH,
            &[],
            event_check("Suspended", "Normal"),
            201,
            json!({}),
        ),
    ];
    let srv = server.run(steps);
    let action = reconcile(Arc::new(ags), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(REQUEUE_USER_FAILURE));
    timeout_after_1s(srv).await;
}

#[test]
fn backoff_by_class() {
    assert_eq!(backoff("kube_conflict", 1), Duration::from_millis(200));
    assert_eq!(backoff("kube_conflict", 20), Duration::from_secs(10));
    assert_eq!(backoff("kube_api", 1), Duration::from_millis(500));
    assert_eq!(backoff("kube_api", 3), Duration::from_secs(2));
    assert_eq!(backoff("kube_api", 30), Duration::from_secs(300));
    assert_eq!(backoff("kube_invalid", 1), Duration::from_secs(30));
    assert_eq!(backoff("kube_invalid", 10), Duration::from_secs(600));
    assert_eq!(backoff("key_ring", 2), Duration::from_secs(2));
}

#[test]
fn drift_skips_only_the_version_kage_wrote() {
    let own = OwnWrites::default();
    let meta = |rv: &str| -> PartialObjectMeta<Secret> {
        let mut m = PartialObjectMeta::<Secret>::default();
        m.metadata.namespace = Some("prod".into());
        m.metadata.name = Some("db".into());
        m.metadata.resource_version = Some(rv.into());
        m
    };
    let triggers = |e: watcher::Event<PartialObjectMeta<Secret>>| {
        drift_trigger(&own, Ok(e)).is_some_and(|r| r.is_ok())
    };
    // Nothing recorded yet: every change counts.
    assert!(triggers(watcher::Event::Apply(meta("5"))));
    own.record(&meta("5"), Some(1), 1);
    // The event of kage's own write (also when re-listed) is skipped; any other version counts.
    assert!(!triggers(watcher::Event::Apply(meta("5"))));
    assert!(!triggers(watcher::Event::InitApply(meta("5"))));
    assert!(triggers(watcher::Event::Apply(meta("6"))));
    // A deletion always counts (its object carries the last version, maybe kage's own).
    assert!(triggers(watcher::Event::Delete(meta("5"))));
    assert!(
        triggers(watcher::Event::Apply(meta("5"))),
        "forgotten after the deletion"
    );
    assert!(!triggers(watcher::Event::Init));
    assert!(!triggers(watcher::Event::InitDone));
    // Another Secret of the same name elsewhere is not confused with it.
    own.record(&meta("7"), Some(1), 1);
    let mut other = meta("7");
    other.metadata.namespace = Some("dev".into());
    assert!(triggers(watcher::Event::Apply(other)));
}

#[test]
fn unchanged_needs_the_same_version_generation_and_key_ring() {
    let own = OwnWrites::default();
    let mut s = secret(&[("a", b"x")], |m| m.resource_version = Some("9".into()));
    assert!(!own.unchanged(&s, Some(2), 4), "nothing recorded");
    own.record(&s, Some(2), 4);
    assert!(own.unchanged(&s, Some(2), 4));
    assert!(!own.unchanged(&s, Some(3), 4), "the AgeSecret changed");
    assert!(!own.unchanged(&s, Some(2), 5), "the key ring changed");
    s.metadata.resource_version = Some("10".into());
    assert!(
        !own.unchanged(&s, Some(2), 4),
        "someone else wrote the Secret"
    );
}

#[test]
fn ready_for_generation_reads_the_status() {
    let mut ags = AgeSecret::test();
    ags.metadata.generation = Some(2);
    assert!(!ready_for_generation(&ags));
    let ready = |generation: i64, status: &str| kage_core::api::v1alpha1::AgeSecretStatus {
        observed_generation: Some(generation),
        conditions: vec![kage_core::api::v1alpha1::Condition {
            type_: "Ready".into(),
            status: status.into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    ags.status = Some(ready(2, "True"));
    assert!(ready_for_generation(&ags));
    ags.status = Some(ready(1, "True"));
    assert!(!ready_for_generation(&ags), "older generation");
    ags.status = Some(ready(2, "False"));
    assert!(!ready_for_generation(&ags));
}

#[path = "reconcile_rules_tests.rs"]
mod rules;
