//! kube::runtime against the server: a Controller converges without hot-looping, a
//! watcher survives dropped watches and 410 Gone, conflicts are retried.

use crate::common::{cluster, status_of};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "test.kage.dev",
    version = "v1",
    kind = "Gadget",
    namespaced,
    status = "GadgetStatus"
)]
pub struct GadgetSpec {
    value: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
pub struct GadgetStatus {
    observed_generation: Option<i64>,
    ready: bool,
}

struct Ctx {
    client: kube::Client,
    reconciles: AtomicUsize,
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct Failed(#[from] kube::Error);

const MANAGER: &str = "gadget-controller";

async fn reconcile(g: Arc<Gadget>, ctx: Arc<Ctx>) -> Result<Action, Failed> {
    ctx.reconciles.fetch_add(1, Ordering::SeqCst);
    let ns = g.namespace().unwrap_or_default();
    let name = g.name_any();
    let owner = g.controller_owner_ref(&()).expect("owner ref");
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "ownerReferences": [owner]},
        "data": {"value": g.spec.value},
    });
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    cms.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(cm),
    )
    .await?;
    let gen_ = g.metadata.generation;
    let current = g.status.clone().unwrap_or_default();
    if current.observed_generation != gen_ || !current.ready {
        let gadgets: Api<Gadget> = Api::namespaced(ctx.client.clone(), &ns);
        let status = json!({"apiVersion": "test.kage.dev/v1", "kind": "Gadget",
            "status": {"observed_generation": gen_, "ready": true}});
        gadgets
            .patch_status(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(status),
            )
            .await?;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn error_policy(_: Arc<Gadget>, _: &Failed, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(200))
}

#[tokio::test]
async fn controller_converges_without_hot_loop_and_gc_follows() {
    let c = cluster().await;
    let client = c.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Gadget::crd())
        .await
        .expect("crd");
    let gadgets: Api<Gadget> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        reconciles: AtomicUsize::new(0),
    });
    let controller = Controller::new(gadgets.clone(), watcher::Config::default())
        .owns(cms.clone(), watcher::Config::default())
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);

    gadgets
        .create(
            &PostParams::default(),
            &Gadget::new(
                "g1",
                GadgetSpec {
                    value: "one".into(),
                },
            ),
        )
        .await
        .expect("gadget");
    let ready = |want_gen: i64| {
        let gadgets = gadgets.clone();
        async move {
            for _ in 0..100 {
                if let Ok(g) = gadgets.get("g1").await
                    && let Some(s) = g.status
                    && s.ready
                    && s.observed_generation == Some(want_gen)
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("gadget never became ready at generation {want_gen}");
        }
    };
    ready(1).await;
    let owned = cms.get("g1").await.expect("configmap created");
    assert_eq!(owned.data.unwrap_or_default()["value"], "one");

    // Settled: over two seconds the count must stay (nearly) flat. A server that bumps
    // resourceVersions on no-op writes makes this loop forever.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = ctx.reconciles.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = ctx.reconciles.load(Ordering::SeqCst);
    assert!(
        after - before <= 1,
        "hot loop: {before} -> {after} reconciles while idle"
    );

    // A spec change flows through.
    gadgets
        .patch(
            "g1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"value": "two"}})),
        )
        .await
        .expect("spec change");
    ready(2).await;
    for _ in 0..100 {
        if cms.get("g1").await.expect("cm").data.unwrap_or_default()["value"] == "two" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        cms.get("g1").await.expect("cm").data.unwrap_or_default()["value"],
        "two"
    );

    // Drift is repaired: the controller owns the ConfigMap.
    cms.delete("g1", &DeleteParams::default())
        .await
        .expect("delete child");
    let mut repaired = false;
    for _ in 0..100 {
        if cms.get("g1").await.is_ok() {
            repaired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(repaired, "deleted child was not recreated");

    // Deleting the owner garbage-collects the ConfigMap.
    handle.abort();
    gadgets
        .delete("g1", &DeleteParams::default())
        .await
        .expect("delete gadget");
    assert_eq!(status_of(cms.get("g1").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn watcher_resumes_after_dropped_watches_and_gone() {
    let c = cluster().await;
    let client = c.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let seen = Arc::new(std::sync::Mutex::new(BTreeSet::<String>::new()));
    let seen2 = seen.clone();
    let task = tokio::spawn(
        watcher(cms.clone(), watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .for_each(move |o| {
                if let Ok(o) = o {
                    seen2.lock().expect("lock").insert(o.name_any());
                }
                async {}
            }),
    );
    let wait_for = |name: &'static str| {
        let seen = seen.clone();
        async move {
            for _ in 0..200 {
                if seen.lock().expect("lock").contains(name) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("watcher never saw {name}");
        }
    };
    let mk = |n: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": n}})).expect("cm")
    };
    cms.create(&PostParams::default(), &mk("first"))
        .await
        .expect("first");
    wait_for("first").await;
    while c.open_watches() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Dropped watches: the watcher re-watches from its resourceVersion.
    c.faults().drop_watches();
    cms.create(&PostParams::default(), &mk("second"))
        .await
        .expect("second");
    wait_for("second").await;

    // History compacted and watches dropped: the re-watch gets 410 and the watcher re-lists.
    while c.open_watches() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let filler: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "default");
    filler
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "filler"}})).expect("s"),
        )
        .await
        .expect("filler");
    c.compact();
    c.faults().drop_watches();
    cms.create(&PostParams::default(), &mk("third"))
        .await
        .expect("third");
    wait_for("third").await;

    // An injected 410 on the next list/watch request also recovers.
    while c.open_watches() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.faults().fail_next(
        1,
        kage_testcluster::Matcher::prefix("/api/v1/namespaces/default/configmaps").method("GET"),
        410,
        "too old resource version",
    );
    c.faults().drop_watches();
    cms.create(&PostParams::default(), &mk("fourth"))
        .await
        .expect("fourth");
    wait_for("fourth").await;
    task.abort();
}

#[tokio::test]
async fn conflicts_are_retried_by_read_modify_write() {
    let c = cluster().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "n"}, "data": {"v": "0"}}))
            .expect("cm"),
    )
    .await
    .expect("create");
    c.faults().conflict_next_writes(2);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut live = cms.get("n").await.expect("get");
        live.data
            .get_or_insert_default()
            .insert("v".into(), "1".into());
        match cms.replace("n", &PostParams::default(), &live).await {
            Ok(_) => break,
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(attempts, 3);
    assert_eq!(
        cms.get("n").await.expect("get").data.unwrap_or_default()["v"],
        "1"
    );

    // A genuine race: two writers from the same read; the second conflicts.
    let a = cms.get("n").await.expect("a");
    let mut b = a.clone();
    let mut a2 = a.clone();
    a2.data
        .get_or_insert_default()
        .insert("v".into(), "a".into());
    b.data
        .get_or_insert_default()
        .insert("v".into(), "b".into());
    cms.replace("n", &PostParams::default(), &a2)
        .await
        .expect("first writer");
    assert_eq!(
        status_of(
            cms.replace("n", &PostParams::default(), &b)
                .await
                .unwrap_err()
        )
        .code,
        409
    );
    let _ = cms.list(&ListParams::default()).await.expect("list");
}
