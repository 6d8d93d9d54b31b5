//! End-to-end: Secrets the API server would refuse give `Ready=False` at once, the existing
//! Secret untouched; the way out of an immutable Secret works as documented.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kage_core::api::v1alpha1::AgeSecret;
use kage_testcluster::Server;
use kube::api::{Api, DeleteParams, PostParams};

use crate::e2e::{Env, data_of, eventually, sealed_ags, wait_reason};

crate::e2e::on_both_servers!(kubernetes_rules_are_reported_and_immutable_secrets_have_a_way_out);

async fn kubernetes_rules_are_reported_and_immutable_secrets_have_a_way_out(server: Server) {
    let env = Env::start(server, &[]).await;
    env.namespace("prod").await;
    let to = env.recipients().await;
    let ags_api: Api<AgeSecret> = Api::namespaced(env.admin.clone(), "prod");
    let secrets: Api<Secret> = Api::namespaced(env.admin.clone(), "prod");

    // A key the API server refuses: InvalidSpec, no Secret.
    let bad = sealed_ags("prod", "dotdot", &[("..x", "v")], &to);
    ags_api.create(&PostParams::default(), &bad).await.unwrap();
    assert!(
        wait_reason(&ags_api, "dotdot", "False", "InvalidSpec").await,
        "log:\n{}",
        env.log()
    );
    let c = ags_api.get("dotdot").await.unwrap().status.unwrap();
    let message = &c.condition("Ready").unwrap().message;
    assert!(message.contains("must not start with '..'"), "{message}");
    assert!(secrets.get_opt("dotdot").await.unwrap().is_none());

    // A TLS Secret without its certificate.
    let mut tls = sealed_ags("prod", "tls", &[("tls.key", "k")], &to);
    tls.spec.spec.template.type_ = Some("kubernetes.io/tls".into());
    ags_api.create(&PostParams::default(), &tls).await.unwrap();
    assert!(
        wait_reason(&ags_api, "tls", "False", "InvalidSpec").await,
        "log:\n{}",
        env.log()
    );

    // An immutable Secret: written once; a new value is refused before writing.
    let mut frozen = sealed_ags("prod", "frozen", &[("password", "first-value")], &to);
    frozen.spec.spec.template.immutable = Some(true);
    ags_api
        .create(&PostParams::default(), &frozen)
        .await
        .unwrap();
    assert!(
        wait_reason(&ags_api, "frozen", "True", "Decrypted").await,
        "log:\n{}",
        env.log()
    );
    let mut current = ags_api.get("frozen").await.unwrap();
    let resealed = sealed_ags("prod", "frozen", &[("password", "second-value")], &to);
    current.spec.spec.encrypted_data = resealed.spec.spec.encrypted_data;
    current.metadata.managed_fields = None;
    ags_api
        .replace("frozen", &PostParams::default(), &current)
        .await
        .unwrap();
    assert!(
        wait_reason(&ags_api, "frozen", "False", "SecretImmutable").await,
        "log:\n{}",
        env.log()
    );
    let status = ags_api.get("frozen").await.unwrap().status.unwrap();
    assert_eq!(
        status.observed_generation,
        Some(2),
        "the status is for the new generation"
    );
    let s = secrets.get("frozen").await.unwrap();
    assert_eq!(data_of(&s, "password").unwrap(), b"first-value");

    // The documented way out: delete the Secret; kage recreates it with the new value.
    secrets
        .delete("frozen", &DeleteParams::default())
        .await
        .unwrap();
    let renewed = eventually(Duration::from_secs(15), || async {
        secrets
            .get_opt("frozen")
            .await
            .ok()
            .flatten()
            .and_then(|s| data_of(&s, "password"))
            .is_some_and(|v| v == b"second-value")
    })
    .await;
    assert!(renewed, "not recreated; log:\n{}", env.log());
    assert!(
        wait_reason(&ags_api, "frozen", "True", "Decrypted").await,
        "log:\n{}",
        env.log()
    );
    let log = env.log();
    assert!(
        !log.contains("first-value") && !log.contains("second-value"),
        "plaintext in the log"
    );
}
