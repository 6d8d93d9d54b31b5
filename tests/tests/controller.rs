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

#[tokio::test]
async fn streaming_list_watcher_sees_initial_objects_and_changes() {
    let c = cluster().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let mk = |n: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": n}})).expect("cm")
    };
    cms.create(&PostParams::default(), &mk("early"))
        .await
        .expect("early");
    let mut stream = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut init_done = false;
    let mut names = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(init_done && names.contains("late")) {
        let ev = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("events in time")
            .expect("stream continues")
            .expect("no watch error");
        match ev {
            watcher::Event::InitApply(o) | watcher::Event::Apply(o) => {
                names.insert(o.name_any());
            }
            watcher::Event::InitDone => {
                init_done = true;
                assert!(
                    names.contains("early"),
                    "initial objects come before InitDone"
                );
                cms.create(&PostParams::default(), &mk("late"))
                    .await
                    .expect("late");
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn kube_finalizer_helper_adds_and_removes_its_finalizer() {
    use kube::runtime::finalizer::{Event as Fin, finalizer};
    let c = cluster().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "f"}})).expect("cm"),
    )
    .await
    .expect("create");
    let cleaned = Arc::new(AtomicUsize::new(0));
    let run = |obj: ConfigMap| {
        let cms = cms.clone();
        let cleaned = cleaned.clone();
        async move {
            finalizer(&cms, "kage.dev/cleanup", Arc::new(obj), |ev| async move {
                if let Fin::Cleanup(_) = ev {
                    cleaned.fetch_add(1, Ordering::SeqCst);
                }
                Ok::<_, kube::Error>(Action::await_change())
            })
            .await
        }
    };
    // First pass adds the finalizer (JSON patch with a `test` against a missing field).
    run(cms.get("f").await.expect("get"))
        .await
        .expect("adds finalizer");
    let live = cms.get("f").await.expect("get");
    assert_eq!(
        live.metadata.finalizers.clone().unwrap_or_default(),
        ["kage.dev/cleanup"]
    );
    run(live).await.expect("apply pass");
    cms.delete("f", &DeleteParams::default())
        .await
        .expect("delete");
    let terminating = cms.get("f").await.expect("held by the finalizer");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    run(terminating).await.expect("cleanup pass");
    assert_eq!(cleaned.load(Ordering::SeqCst), 1);
    assert_eq!(status_of(cms.get("f").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn metadata_api_and_metadata_watcher() {
    use kube::core::PartialObjectMeta;
    let c = cluster().await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(c.client(), "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "m", "labels": {"a": "b"}}, "stringData": {"k": "v"}}),
            )
            .expect("s"),
        )
        .await
        .expect("create");
    let meta = secrets.get_metadata("m").await.expect("metadata");
    assert_eq!(
        meta.types.as_ref().map(|t| t.kind.as_str()),
        Some("PartialObjectMetadata")
    );
    assert_eq!(meta.metadata.labels.unwrap_or_default()["a"], "b");
    let list = secrets
        .list_metadata(&ListParams::default())
        .await
        .expect("list metadata");
    assert_eq!(list.items.len(), 1);
    let meta_api: Api<PartialObjectMeta<k8s_openapi::api::core::v1::Secret>> =
        Api::namespaced(c.client(), "default");
    let mut stream = watcher(meta_api, watcher::Config::default())
        .applied_objects()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("in time")
        .expect("item")
        .expect("ok");
    assert_eq!(first.name_any(), "m");
}

#[tokio::test]
async fn crd_schema_prunes_and_validates() {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let c = cluster().await;
    let crds: Api<CustomResourceDefinition> = Api::all(c.client());
    crds.create(&PostParams::default(), &Gadget::crd())
        .await
        .expect("crd");
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("test.kage.dev", "v1", "Gadget"),
        "gadgets",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(c.client(), "default", &ar);
    let mk = |spec: serde_json::Value| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "test.kage.dev/v1", "kind": "Gadget",
            "metadata": {"name": "g"}, "spec": spec}))
        .expect("obj")
    };
    let st = status_of(
        api.create(&PostParams::default(), &mk(json!({"value": 5})))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 422);
    assert_eq!(
        st.message,
        r#"Gadget.test.kage.dev "g" is invalid: spec.value: Invalid value: "integer": spec.value in body must be of type string: "integer""#
    );
    let st = status_of(
        api.create(&PostParams::default(), &mk(json!({})))
            .await
            .unwrap_err(),
    );
    assert!(
        st.message.contains("spec.value: Required value"),
        "{}",
        st.message
    );
    let ok = api
        .create(
            &PostParams::default(),
            &mk(json!({"value": "x", "unknown": true})),
        )
        .await
        .expect("valid");
    assert_eq!(
        ok.data["spec"],
        json!({"value": "x"}),
        "unknown fields are pruned"
    );
}
