//! Watch semantics over raw HTTP: selector transitions, bookmarks, initial events, timeout.

use crate::common::raw;
use k8s_openapi::api::core::v1::ConfigMap;
use kage_testcluster::{Options, TestCluster};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::time::Duration;

fn events(body: &str) -> Vec<(String, Value)> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("each line is one JSON event");
            (
                v["type"].as_str().unwrap_or_default().to_string(),
                v["object"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn watch_selector_transitions_bookmarks_and_timeout() {
    let c = TestCluster::start_with(Options {
        bookmark_interval: Duration::from_millis(200),
        ..Default::default()
    })
    .await
    .expect("start");
    let client = c.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let rv = c.resource_version();
    let watch = {
        let client = client.clone();
        tokio::spawn(async move {
            raw(&client, "GET",
                &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&labelSelector=app%3Dx&allowWatchBookmarks=true&timeoutSeconds=2"),
                "application/json", vec![]).await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pp = PostParams::default();
    cms.create(
        &pp,
        &serde_json::from_value(json!({"metadata": {"name": "in", "labels": {"app": "x"}}}))
            .expect("cm"),
    )
    .await
    .expect("in");
    cms.create(
        &pp,
        &serde_json::from_value(json!({"metadata": {"name": "out"}})).expect("cm"),
    )
    .await
    .expect("out");
    let merge = |l: Value| Patch::Merge(json!({"metadata": {"labels": l}}));
    cms.patch("in", &PatchParams::default(), &merge(json!({"app": null})))
        .await
        .expect("leaves");
    cms.patch("out", &PatchParams::default(), &merge(json!({"app": "x"})))
        .await
        .expect("joins");
    cms.patch(
        "out",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .expect("modify");
    let started = std::time::Instant::now();
    let (code, body) = watch.await.expect("join");
    assert_eq!(code, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "timeoutSeconds ends the watch"
    );
    let evs = events(&body);
    let typed: Vec<(String, String)> = evs
        .iter()
        .filter(|(t, _)| t != "BOOKMARK")
        .map(|(t, o)| {
            (
                t.clone(),
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("ADDED", "in"),
        ("DELETED", "in"),
        ("ADDED", "out"),
        ("MODIFIED", "out"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(typed, want);
    let bookmarks: Vec<&Value> = evs
        .iter()
        .filter(|(t, _)| t == "BOOKMARK")
        .map(|(_, o)| o)
        .collect();
    assert!(!bookmarks.is_empty(), "bookmarks requested: {body}");
    assert_eq!(bookmarks[0]["kind"], "ConfigMap");
    assert!(
        bookmarks[0]["metadata"]["resourceVersion"]
            .as_str()
            .is_some()
    );
}

#[tokio::test]
async fn watch_send_initial_events_ends_with_marked_bookmark() {
    let c = TestCluster::start().await.expect("start");
    let client = c.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for n in ["a", "b"] {
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": n}})).expect("cm"),
        )
        .await
        .expect("cm");
    }
    let (code, body) = raw(&client, "GET",
        "/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1",
        "application/json", vec![]).await;
    assert_eq!(code, 200);
    let evs = events(&body);
    assert_eq!(evs[0].0, "ADDED");
    assert_eq!(evs[1].0, "ADDED");
    assert_eq!(evs[2].0, "BOOKMARK");
    assert_eq!(
        evs[2].1["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    // A plain watch without a resourceVersion also starts with the current objects.
    let (_, body) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(events(&body).len(), 2);
}
