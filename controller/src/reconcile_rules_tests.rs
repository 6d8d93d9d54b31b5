//! Mock API scenarios for Secrets the API server refuses (or would refuse): reported at once as
//! `Ready=False`, the existing Secret untouched, no error (so no retry loop).

use super::*;

fn status_message_check(
    reason: &'static str,
    needles: &'static [&'static str],
) -> impl Fn(&Value) + Send {
    let base = status_check("False", reason);
    move |b: &Value| {
        base(b);
        let m = b["status"]["conditions"][0]["message"].as_str().unwrap();
        for n in needles {
            assert!(m.contains(n), "{m:?} lacks {n:?}");
        }
    }
}

fn failure_steps(
    existing: Option<&Secret>,
    ags: &AgeSecret,
    reason: &'static str,
    needles: &'static [&'static str],
) -> Vec<Step> {
    let get = match existing {
        Some(s) => step(
            Method::GET,
            SECRET_PATH,
            &[],
            no_check,
            200,
            serde_json::to_value(s).unwrap(),
        ),
        None => step(Method::GET, SECRET_PATH, &[], no_check, 404, not_found()),
    };
    vec![
        get,
        // No PATCH of the Secret.
        step(
            Method::PATCH,
            STATUS_PATH,
            APPLY,
            status_message_check(reason, needles),
            200,
            serde_json::to_value(ags).unwrap(),
        ),
        step(
            Method::POST,
            EVENTS_PATH,
            &[],
            event_check(reason, "Warning"),
            201,
            json!({}),
        ),
    ]
}

#[tokio::test]
async fn dot_dot_key_is_invalid_spec_at_once() {
    let k = TestKeys::new();
    let (ctx, server) = Context::test(keyset(&k.id));
    let ags = AgeSecret::test().sealed("..x", PLAIN, &k.id);
    let srv = server.run(failure_steps(
        None,
        &ags,
        "InvalidSpec",
        &["\"..x\"", "must not start with '..'", "IsConfigMapKey"],
    ));
    let action = reconcile(Arc::new(ags), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(REQUEUE_USER_FAILURE));
    timeout_after_1s(srv).await;
}

#[tokio::test]
async fn tls_without_certificate_is_invalid_spec_before_writing() {
    let k = TestKeys::new();
    let (ctx, server) = Context::test(keyset(&k.id));
    let ags = AgeSecret::test()
        .sealed("tls.key", PLAIN, &k.id)
        .edit_spec(|s| s.template.type_ = Some("kubernetes.io/tls".into()));
    let srv = server.run(failure_steps(
        None,
        &ags,
        "InvalidSpec",
        &["data[tls.crt]: Required value", "ValidateSecret"],
    ));
    let action = reconcile(Arc::new(ags), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(REQUEUE_USER_FAILURE));
    timeout_after_1s(srv).await;
}

#[tokio::test]
async fn changing_an_immutable_secret_is_reported_and_not_written() {
    let k = TestKeys::new();
    let (ctx, server) = Context::test(keyset(&k.id));
    let ags = AgeSecret::test()
        .sealed("password", PLAIN, &k.id)
        .edit_spec(|s| s.template.immutable = Some(true));
    let mut existing = secret(&[("password", b"previous")], |m| {
        m.owner_references = Some(vec![owner_ref()]);
    });
    existing.immutable = Some(true);
    let srv = server.run(failure_steps(
        Some(&existing),
        &ags,
        "SecretImmutable",
        &["is immutable", "kubectl -n prod delete secret db"],
    ));
    let action = reconcile(Arc::new(ags), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(REQUEUE_USER_FAILURE));
    timeout_after_1s(srv).await;
}

#[tokio::test]
async fn a_refusal_by_the_api_server_is_reported_not_retried() {
    let k = TestKeys::new();
    let (ctx, server) = Context::test(keyset(&k.id));
    let ags = AgeSecret::test().sealed("password", PLAIN, &k.id);
    let plain = std::str::from_utf8(PLAIN).unwrap();
    let refusal = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 422, "reason": "Invalid",
        "message": format!("Secret \"db\" is invalid: data[password]: Invalid value: \"{plain}\""),
        "details": {"name": "db", "kind": "secrets", "causes": [
            {"reason": "FieldValueInvalid", "field": "data[password]", "message": format!("Invalid value: \"{plain}\"")}
        ]},
    });
    let steps = vec![
        step(Method::GET, SECRET_PATH, &[], no_check, 404, not_found()),
        step(Method::PATCH, SECRET_PATH, APPLY, no_check, 422, refusal),
        step(
            Method::PATCH,
            STATUS_PATH,
            APPLY,
            status_message_check(
                "SecretRejected",
                &["422 Invalid", "data[password]: FieldValueInvalid"],
            ),
            200,
            serde_json::to_value(&ags).unwrap(),
        ),
        step(
            Method::POST,
            EVENTS_PATH,
            &[],
            event_check("SecretRejected", "Warning"),
            201,
            json!({}),
        ),
    ];
    let srv = server.run(steps);
    // Ok, not Err: the error policy's backoff loop is not entered.
    let action = reconcile(Arc::new(ags), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::requeue(REQUEUE_USER_FAILURE));
    timeout_after_1s(srv).await;
    assert!(
        ctx.metrics
            .encode()
            .contains("kage_reconcile_errors_total{reason=\"secret_rejected\"} 1")
    );
}
