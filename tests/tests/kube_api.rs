//! kube-rs clients against the server: CRUD, errors, selectors, paging, SSA, RBAC,
//! tokens, the service proxy, garbage collection, finalizers and discovery.

use crate::common::{cluster, create_json, raw, status_of, widget_crd};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Discovery;
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()},
        "data": {"k": name}
    }))
    .expect("configmap")
}

#[tokio::test]
async fn crud_and_status_errors() {
    let c = cluster().await;
    let secrets: Api<Secret> = Api::namespaced(c.client(), "default");
    let s = create_json(
        &secrets,
        json!({"metadata": {"name": "db"}, "stringData": {"password": "hunter2"}}),
    )
    .await;
    let data = s.data.expect("data");
    assert_eq!(data["password"].0, b"hunter2");
    let meta = &s.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    // Secrets have no generation, as on kube-apiserver.
    assert_eq!(meta.generation, None);

    let dup = secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "db"}})).expect("s"),
        )
        .await
        .unwrap_err();
    let st = status_of(dup);
    assert_eq!((st.code, st.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(st.message, r#"secrets "db" already exists"#);

    let missing = status_of(secrets.get("nope").await.unwrap_err());
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, r#"secrets "nope" not found"#);

    // 422 with causes: a TLS secret without its keys.
    let bad: Secret = serde_json::from_value(json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "stringData": {"tls.crt": "x"}})).expect("s");
    let st = status_of(
        secrets
            .create(&PostParams::default(), &bad)
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        st.message,
        r#"Secret "tls" is invalid: data[tls.key]: Required value"#
    );
    let causes = st.details.expect("details").causes;
    assert_eq!(causes[0].field, "data[tls.key]");

    // A data key starting with `..`: 422, as the real server (kage-core's IsConfigMapKey).
    let dotdot: Secret =
        serde_json::from_value(json!({"metadata": {"name": "dotdot"}, "stringData": {"..x": "v"}}))
            .expect("s");
    let st = status_of(
        secrets
            .create(&PostParams::default(), &dotdot)
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        st.message,
        r#"Secret "dotdot" is invalid: data[..x]: Invalid value: "..x": must not start with '..'"#
    );

    // Invalid name.
    let st = status_of(
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "Bad_Name"}})).expect("s"),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 422);
    assert!(
        st.message
            .contains("metadata.name: Invalid value: \"Bad_Name\""),
        "{}",
        st.message
    );

    // Stale resourceVersion on replace: 409 Conflict.
    let live = secrets.get("db").await.expect("get");
    let mut changed = live.clone();
    changed.string_data = Some(BTreeMap::from([("password".into(), "new".into())]));
    secrets
        .replace("db", &PostParams::default(), &changed)
        .await
        .expect("replace");
    let st = status_of(
        secrets
            .replace("db", &PostParams::default(), &changed)
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        st.message,
        r#"Operation cannot be fulfilled on secrets "db": the object has been modified; please apply your changes to the latest version and try again"#
    );

    // Immutable secrets refuse data changes.
    let imm = create_json(
        &secrets,
        json!({"metadata": {"name": "imm"}, "immutable": true, "stringData": {"a": "1"}}),
    )
    .await;
    let mut edit = imm.clone();
    edit.string_data = Some(BTreeMap::from([("a".into(), "2".into())]));
    let st = status_of(
        secrets
            .replace("imm", &PostParams::default(), &edit)
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 422);
    assert!(
        st.message
            .contains("field is immutable when `immutable` is set"),
        "{}",
        st.message
    );

    // generateName.
    let g = create_json(&secrets, json!({"metadata": {"generateName": "gen-"}})).await;
    let name = g.metadata.name.expect("name");
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    // dryRun does not persist.
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    secrets
        .create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": "dry"}})).expect("s"),
        )
        .await
        .expect("dry run");
    assert_eq!(status_of(secrets.get("dry").await.unwrap_err()).code, 404);

    // Delete.
    secrets
        .delete("db", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(status_of(secrets.get("db").await.unwrap_err()).code, 404);

    // Namespaced create in a missing namespace.
    let other: Api<Secret> = Api::namespaced(c.client(), "ghost");
    let st = status_of(
        other
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "x"}})).expect("s"),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(st.message, r#"namespaces "ghost" not found"#);
}

#[tokio::test]
async fn selectors_and_paging() {
    let c = cluster().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let pp = PostParams::default();
    cms.create(&pp, &cm("a", &[("app", "web"), ("tier", "front")]))
        .await
        .expect("a");
    cms.create(&pp, &cm("b", &[("app", "api")]))
        .await
        .expect("b");
    cms.create(&pp, &cm("c", &[])).await.expect("c");
    let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        l.items
            .into_iter()
            .filter_map(|i| i.metadata.name)
            .collect()
    };
    let sel = |s: &str| ListParams::default().labels(s);
    assert_eq!(names(cms.list(&sel("app=web")).await.expect("l")), ["a"]);
    assert_eq!(names(cms.list(&sel("app==api")).await.expect("l")), ["b"]);
    assert_eq!(
        names(cms.list(&sel("app!=web")).await.expect("l")),
        ["b", "c"]
    );
    assert_eq!(
        names(cms.list(&sel("app in (web,api)")).await.expect("l")),
        ["a", "b"]
    );
    assert_eq!(
        names(cms.list(&sel("app notin (web)")).await.expect("l")),
        ["b", "c"]
    );
    assert_eq!(names(cms.list(&sel("tier")).await.expect("l")), ["a"]);
    assert_eq!(names(cms.list(&sel("!app")).await.expect("l")), ["c"]);
    let f = ListParams::default().fields("metadata.name=b");
    assert_eq!(names(cms.list(&f).await.expect("l")), ["b"]);
    let all: Api<ConfigMap> = Api::all(c.client());
    let f = ListParams::default().fields("metadata.namespace!=default");
    assert!(names(all.list(&f).await.expect("l")).is_empty());

    // Pages of two.
    let mut lp = ListParams::default().limit(2);
    let mut seen = vec![];
    let mut pages = 0;
    loop {
        let page = cms.list(&lp).await.expect("page");
        pages += 1;
        assert!(page.metadata.resource_version.is_some());
        let token = page.metadata.continue_.clone();
        seen.extend(names(page));
        match token {
            Some(t) if !t.is_empty() => lp = lp.continue_token(&t),
            _ => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c"]);
    assert_eq!(pages, 2);
}

#[tokio::test]
async fn noop_writes_keep_resource_version_and_generation_tracks_spec() {
    let c = cluster().await;
    let crds: Api<CustomResourceDefinition> = Api::all(c.client());
    create_json(&crds, widget_crd()).await;
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(c.client(), "default", &ar);
    let w: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"size": 1}, "status": {"ignored": true}
    }))
    .expect("w");
    let w = widgets
        .create(&PostParams::default(), &w)
        .await
        .expect("create cr");
    assert_eq!(w.metadata.generation, Some(1));
    assert!(
        w.data.get("status").is_none(),
        "status is dropped on create"
    );
    let rv = w.metadata.resource_version.clone();

    // Same object again: nothing changes.
    let same = widgets
        .replace("w", &PostParams::default(), &w)
        .await
        .expect("replace");
    assert_eq!(same.metadata.resource_version, rv);
    let merged = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 1}})),
        )
        .await
        .expect("patch");
    assert_eq!(merged.metadata.resource_version, rv);

    // Metadata changes bump the resourceVersion, not the generation.
    let labelled = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .expect("label");
    assert_ne!(labelled.metadata.resource_version, rv);
    assert_eq!(labelled.metadata.generation, Some(1));

    // Status via /status only, without a generation bump; main writes ignore status.
    let st = widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await
        .expect("status");
    assert_eq!(st.data["status"]["ready"], true);
    assert_eq!(st.metadata.generation, Some(1));
    let main = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": false}})),
        )
        .await
        .expect("main");
    assert_eq!(main.data["status"]["ready"], true);

    // Spec changes bump the generation.
    let bumped = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .expect("spec");
    assert_eq!(bumped.metadata.generation, Some(2));

    // CRs refuse strategic merge patches, as the real server does.
    let st = status_of(
        widgets
            .patch(
                "w",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {"size": 3}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 415);

    // JSON patch with a failing test op is 422.
    let st = status_of(
        widgets
            .patch(
                "w",
                &PatchParams::default(),
                &Patch::<()>::Json(
                    serde_json::from_value(
                        json!([{"op": "test", "path": "/spec/size", "value": 9}]),
                    )
                    .expect("p"),
                ),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 422);

    // Short names and categories are in discovery.
    let discovery = Discovery::new(c.client()).run().await.expect("discovery");
    let (res, caps) = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(r, _)| r.kind == "Widget")
        .expect("Widget discovered");
    assert_eq!(res.plural, "widgets");
    assert!(
        caps.subresources
            .iter()
            .any(|(s, _)| s.plural == "widgets/status" || s.plural == "status")
    );
    assert!(
        discovery
            .groups()
            .any(|g| g.name() == "coordination.k8s.io")
    );

    // Deleting the CRD removes its objects and its resource.
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .expect("delete crd");
    let (code, _) = raw(
        &c.client(),
        "GET",
        "/apis/example.com/v1/namespaces/default/widgets",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(code, 404);
}

#[derive(serde::Deserialize, Debug)]
struct Entry {
    manager: String,
    operation: String,
}

#[tokio::test]
async fn server_side_apply_owns_and_removes_fields() {
    let c = cluster().await;
    let secrets: Api<Secret> = Api::namespaced(c.client(), "default");
    let apply = |data: serde_json::Value| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app"}, "stringData": data});
    let ctl = PatchParams::apply("kage-controller");
    let s = secrets
        .patch(
            "app",
            &ctl,
            &Patch::Apply(apply(json!({"a": "1", "b": "2"}))),
        )
        .await
        .expect("create by apply");
    let keys: Vec<String> = s.data.clone().unwrap_or_default().into_keys().collect();
    assert_eq!(keys, ["a", "b"]);
    let entries: Vec<Entry> = serde_json::from_value(
        serde_json::to_value(s.metadata.managed_fields.clone()).expect("mf"),
    )
    .expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].manager.as_str(), entries[0].operation.as_str()),
        ("kage-controller", "Apply")
    );

    // Re-applying the same config is a no-op.
    let again = secrets
        .patch(
            "app",
            &ctl,
            &Patch::Apply(apply(json!({"a": "1", "b": "2"}))),
        )
        .await
        .expect("again");
    assert_eq!(again.metadata.resource_version, s.metadata.resource_version);

    // Dropping `b` removes it.
    let s = secrets
        .patch("app", &ctl, &Patch::Apply(apply(json!({"a": "1"}))))
        .await
        .expect("drop b");
    let keys: Vec<String> = s.data.clone().unwrap_or_default().into_keys().collect();
    assert_eq!(keys, ["a"]);

    // Another manager changing `a` conflicts; with force it takes `a` over.
    let other = PatchParams::apply("someone-else");
    let st = status_of(
        secrets
            .patch("app", &other, &Patch::Apply(apply(json!({"a": "other"}))))
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        st.message,
        r#"Apply failed with 1 conflict: conflict with "kage-controller" using v1: .data.a"#
    );
    secrets
        .patch(
            "app",
            &other.clone().force(),
            &Patch::Apply(apply(json!({"a": "other", "z": "26"}))),
        )
        .await
        .expect("forced");
    // The controller no longer owns `a`: applying without it leaves it to the other manager.
    let s = secrets
        .patch("app", &ctl, &Patch::Apply(apply(json!({"c": "3"}))))
        .await
        .expect("c");
    let data = s.data.expect("data");
    assert_eq!(data["a"].0, b"other");
    assert_eq!(data["c"].0, b"3");
    assert!(data.contains_key("z"));

    // Apply without a field manager is refused.
    let (code, _) = raw(
        &c.client(),
        "PATCH",
        "/api/v1/namespaces/default/secrets/app",
        "application/apply-patch+yaml",
        b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\n".to_vec(),
    )
    .await;
    assert_eq!(code, 400);

    // YAML bodies work for apply.
    let (code, body) = raw(
        &c.client(),
        "PATCH",
        "/api/v1/namespaces/default/configmaps/yaml-cm?fieldManager=me",
        "application/apply-patch+yaml",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yaml-cm\ndata:\n  k: v\n".to_vec(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"k\":\"v\""));
}

#[tokio::test]
async fn rbac_denies_and_allows_with_kubernetes_messages() {
    let c = cluster().await;
    let admin = c.client();
    let nss: Api<Namespace> = Api::all(admin.clone());
    create_json(&nss, json!({"metadata": {"name": "kage-system"}})).await;
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "kage-system");
    create_json(&sas, json!({"metadata": {"name": "kage-controller"}})).await;
    // TokenRequest through the API.
    let tr: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": ["api"], "expirationSeconds": 600}}))
            .expect("tr");
    let issued = sas
        .create_token_request("kage-controller", &PostParams::default(), &tr)
        .await
        .expect("token request");
    let token = issued.status.and_then(|s| s.token).expect("token issued");
    let sa_client = c.client_for_token(&token);

    let secrets: Api<Secret> = Api::namespaced(sa_client.clone(), "default");
    let st = status_of(secrets.get("x").await.unwrap_err());
    assert_eq!((st.code, st.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        st.message,
        r#"secrets "x" is forbidden: User "system:serviceaccount:kage-system:kage-controller" cannot get resource "secrets" in API group "" in the namespace "default""#
    );

    // Grant get+list on secrets in default, and leases cluster-wide via a ClusterRole.
    let roles: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", "Role"),
            "roles",
        ),
    );
    create_json(&roles, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]},
                  {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["only-this"]}]})).await;
    let rbs: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", "RoleBinding"),
            "rolebindings",
        ),
    );
    create_json(&rbs, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "kage-controller", "namespace": "kage-system"}]})).await;
    let admin_secrets: Api<Secret> = Api::namespaced(admin.clone(), "default");
    create_json(&admin_secrets, json!({"metadata": {"name": "x"}})).await;
    assert_eq!(
        secrets
            .get("x")
            .await
            .expect("allowed")
            .metadata
            .name
            .as_deref(),
        Some("x")
    );
    assert_eq!(
        secrets
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    let st = status_of(
        secrets
            .delete("x", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert!(
        st.message.contains("cannot delete resource \"secrets\""),
        "{}",
        st.message
    );
    // Other namespaces are still closed; cluster scope message shape.
    let all: Api<Secret> = Api::all(sa_client.clone());
    let st = status_of(all.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(
        st.message,
        r#"secrets is forbidden: User "system:serviceaccount:kage-system:kage-controller" cannot list resource "secrets" in API group "" at the cluster scope"#
    );
    // resourceNames.
    let cms: Api<ConfigMap> = Api::namespaced(sa_client.clone(), "default");
    assert_eq!(status_of(cms.get("only-this").await.unwrap_err()).code, 404);
    assert_eq!(status_of(cms.get("other").await.unwrap_err()).code, 403);
    // Group-qualified message.
    let leases: Api<Lease> = Api::namespaced(sa_client.clone(), "kage-system");
    let st = status_of(leases.get("l").await.unwrap_err());
    assert_eq!(
        st.message,
        r#"leases.coordination.k8s.io "l" is forbidden: User "system:serviceaccount:kage-system:kage-controller" cannot get resource "leases" in API group "coordination.k8s.io" in the namespace "kage-system""#
    );
    // Discovery stays open to authenticated users.
    Discovery::new(sa_client.clone())
        .run()
        .await
        .expect("discovery as SA");
    // A deleted ServiceAccount's token stops working: 401.
    sas.delete("kage-controller", &DeleteParams::default())
        .await
        .expect("delete sa");
    let st = status_of(secrets.get("x").await.unwrap_err());
    assert_eq!(st.code, 401);
    // Unknown tokens are 401 too.
    let anon: Api<Secret> = Api::namespaced(c.client_for_token("nonsense"), "default");
    assert_eq!(
        status_of(anon.list(&ListParams::default()).await.unwrap_err()).code,
        401
    );

    // User tokens and ClusterRoleBindings to groups.
    c.add_user_token("jane-token", "jane", &["devs"]);
    let crs: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", "ClusterRole"),
            "clusterroles",
        ),
    );
    create_json(&crs, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "lease-admin"},
        "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["*"], "verbs": ["*"]}]})).await;
    let crbs: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
            "clusterrolebindings",
        ),
    );
    create_json(&crbs, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "devs"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "lease-admin"},
        "subjects": [{"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"}]})).await;
    let jane: Api<Lease> = Api::namespaced(c.client_for_token("jane-token"), "default");
    create_json(
        &jane,
        json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "jane"}}),
    )
    .await;
    let jane_secrets: Api<Secret> = Api::namespaced(c.client_for_token("jane-token"), "default");
    assert_eq!(
        status_of(jane_secrets.get("x").await.unwrap_err()).code,
        403
    );
}

#[tokio::test]
async fn service_proxy_forwards_to_upstreams() {
    use axum::routing::any;
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = upstream.local_addr().expect("addr");
    let app =
        axum::Router::new().fallback(any(|req: http::Request<axum::body::Body>| async move {
            let auth = req.headers().get("authorization").is_some();
            format!("{} {} auth={auth}", req.method(), req.uri())
        }));
    let server = tokio::spawn(async move { axum::serve(upstream, app).await });

    let c = cluster().await;
    // 503s are part of the test: no retries.
    let mut config = c.kube_config(c.admin_token()).expect("config");
    config.default_retry = false;
    let client = kube::Client::try_from(config).expect("client");
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    create_json(&svcs, json!({"metadata": {"name": "kage", "annotations": {"testcluster.kage.dev/upstream": addr.to_string()}},
        "spec": {"ports": [{"name": "http", "port": 8080}]}})).await;
    let (code, body) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/services/http:kage:8080/proxy/v1/keys?x=1",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(body, "GET /v1/keys?x=1 auth=false");
    let (code, body) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/services/kage:http/proxy/v1/verify",
        "application/json",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!((code, body.as_str()), (200, "POST /v1/verify auth=false"));

    // Registered through the library instead of an annotation.
    create_json(
        &svcs,
        json!({"metadata": {"name": "plain"}, "spec": {"ports": [{"port": 80}]}}),
    )
    .await;
    let (code, _) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/services/plain/proxy/",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(code, 503);
    c.register_upstream("default", "plain", &addr.to_string());
    let (code, body) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/services/plain:80/proxy/healthz",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!((code, body.as_str()), (200, "GET /healthz auth=false"));
    // Unknown service.
    let (code, _) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/services/none/proxy/",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(code, 404);
    server.abort();
}

#[tokio::test]
async fn garbage_collection_finalizers_and_namespaces() {
    let c = cluster().await;
    let client = c.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let owner = cms
        .create(&PostParams::default(), &cm("owner", &[]))
        .await
        .expect("owner");
    let uid = owner.metadata.uid.clone().expect("uid");
    let dep = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid, "controller": true}]}}))
        .expect("dep")
    };
    cms.create(&PostParams::default(), &dep("child"))
        .await
        .expect("child");
    // A dependent with a finalizer holds a foreground owner.
    let mut held = dep("held");
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &held)
        .await
        .expect("held");
    cms.delete("owner", &DeleteParams::foreground())
        .await
        .expect("foreground");
    let o = cms.get("owner").await.expect("owner waits");
    assert!(o.metadata.deletion_timestamp.is_some());
    assert!(
        o.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_string())
    );
    assert_eq!(status_of(cms.get("child").await.unwrap_err()).code, 404);
    let h = cms.get("held").await.expect("held stays while finalized");
    assert!(h.metadata.deletion_timestamp.is_some());
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");
    assert_eq!(status_of(cms.get("held").await.unwrap_err()).code, 404);
    assert_eq!(status_of(cms.get("owner").await.unwrap_err()).code, 404);

    // Background and orphan.
    let owner = cms
        .create(&PostParams::default(), &cm("owner", &[]))
        .await
        .expect("owner");
    let uid2 = owner.metadata.uid.clone().expect("uid");
    let dep2: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "orphan", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid2}]}}))
        .expect("dep");
    cms.create(&PostParams::default(), &dep2)
        .await
        .expect("orphan");
    cms.delete("owner", &DeleteParams::orphan())
        .await
        .expect("orphan delete");
    let kept = cms.get("orphan").await.expect("kept");
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );

    // Namespace deletion removes the content; Terminating while a finalizer holds it.
    let nss: Api<Namespace> = Api::all(client.clone());
    create_json(&nss, json!({"metadata": {"name": "doomed"}})).await;
    let doomed: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    doomed
        .create(&PostParams::default(), &cm("plain", &[]))
        .await
        .expect("plain");
    let mut fin = cm("fin", &[]);
    fin.metadata.finalizers = Some(vec!["example.com/x".into()]);
    doomed
        .create(&PostParams::default(), &fin)
        .await
        .expect("fin");
    nss.delete("doomed", &DeleteParams::default())
        .await
        .expect("delete ns");
    let ns = nss.get("doomed").await.expect("terminating");
    assert_eq!(
        ns.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    assert_eq!(status_of(doomed.get("plain").await.unwrap_err()).code, 404);
    let st = status_of(
        doomed
            .create(&PostParams::default(), &cm("late", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 403);
    assert!(
        st.message.contains("because it is being terminated"),
        "{}",
        st.message
    );
    doomed
        .patch(
            "fin",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": []}})),
        )
        .await
        .expect("release");
    let gone = await_condition(nss.clone(), "doomed", conditions::is_deleted(""));
    tokio::time::timeout(Duration::from_secs(5), gone)
        .await
        .expect("ns removed")
        .expect("wait");
    assert_eq!(status_of(nss.get("doomed").await.unwrap_err()).code, 404);

    // Preconditions.
    let p = cms
        .create(&PostParams::default(), &cm("pre", &[]))
        .await
        .expect("pre");
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("wrong".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    assert_eq!(
        status_of(cms.delete("pre", &dp).await.unwrap_err()).code,
        409
    );
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: p.metadata.uid.clone(),
            resource_version: p.metadata.resource_version.clone(),
        }),
        ..Default::default()
    };
    cms.delete("pre", &dp)
        .await
        .expect("matching preconditions");
    // deletecollection with a selector.
    cms.create(&PostParams::default(), &cm("l1", &[("x", "1")]))
        .await
        .expect("l1");
    cms.create(&PostParams::default(), &cm("l2", &[("x", "1")]))
        .await
        .expect("l2");
    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("x=1"),
    )
    .await
    .expect("deletecollection");
    assert!(
        cms.list(&ListParams::default().labels("x"))
            .await
            .expect("list")
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn faults_events_leases_and_in_process_client() {
    let c = cluster().await;
    let client = c.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    c.faults().fail_next(
        2,
        kage_testcluster::Matcher::prefix("/api/v1/namespaces/default/configmaps").method("GET"),
        500,
        "injected",
    );
    let st = status_of(cms.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((st.code, st.message.as_str()), (500, "injected"));
    assert_eq!(status_of(cms.get("x").await.unwrap_err()).code, 500);
    assert_eq!(status_of(cms.get("x").await.unwrap_err()).code, 404);

    // Forced conflicts on writes.
    c.faults().conflict_next_writes(1);
    assert_eq!(
        status_of(
            cms.create(&PostParams::default(), &cm("a", &[]))
                .await
                .unwrap_err()
        )
        .code,
        409
    );
    cms.create(&PostParams::default(), &cm("a", &[]))
        .await
        .expect("second try");

    // The HTTP admin API, admin token only.
    let (code, body) = raw(&client, "POST", "/_testcluster/faults", "application/json",
        br#"{"action":"fail","method":"GET","pathRegex":"/configmaps/a$","count":1,"status":503,"message":"down"}"#.to_vec()).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/configmaps/a",
        "application/json",
        vec![],
    )
    .await;
    // kube retries 503 by default; the fault is used up by then and the retry succeeds,
    // so either outcome shows the rule fired once.
    assert!(code == 200 || code == 503, "{code} {body}");
    let (code, _) = raw(
        &c.client_for_token("nonsense"),
        "DELETE",
        "/_testcluster/faults",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(code, 401);
    let (code, _) = raw(
        &client,
        "DELETE",
        "/_testcluster/faults",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(code, 200);

    // Events in both groups.
    let core_events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(client.clone(), "default");
    create_json(&core_events, json!({"metadata": {"name": "e1"}, "involvedObject": {"kind": "ConfigMap", "name": "a", "namespace": "default"},
        "reason": "Tested", "message": "m", "type": "Normal"})).await;
    let new_events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    create_json(&new_events, json!({"metadata": {"name": "e2"}, "eventTime": "2026-01-01T00:00:00.000000Z", "reason": "Tested",
        "action": "Test", "reportingController": "t", "reportingInstance": "t-1", "type": "Normal",
        "regarding": {"kind": "ConfigMap", "name": "a", "namespace": "default"}})).await;
    let recorder = kube::runtime::events::Recorder::new(client.clone(), "kage-controller".into());
    let cm_a = cms.get("a").await.expect("a");
    recorder
        .publish(
            &kube::runtime::events::Event {
                type_: kube::runtime::events::EventType::Normal,
                reason: "Decrypted".into(),
                note: Some("ok".into()),
                action: "Reconcile".into(),
                secondary: None,
            },
            &kube::Resource::object_ref(&cm_a, &()),
        )
        .await
        .expect("recorder publishes");
    let listed = new_events
        .list(&ListParams::default())
        .await
        .expect("events");
    assert!(
        listed
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("Decrypted"))
    );
    let fs = ListParams::default().fields("involvedObject.name=a");
    assert_eq!(core_events.list(&fs).await.expect("core").items.len(), 1);

    // Leases.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let l = create_json(&leases, json!({"metadata": {"name": "kage-leader"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}})).await;
    let mut l2 = l.clone();
    l2.spec.get_or_insert_default().holder_identity = Some("b".into());
    leases
        .replace("kage-leader", &PostParams::default(), &l2)
        .await
        .expect("take over");
    assert_eq!(
        status_of(
            leases
                .replace("kage-leader", &PostParams::default(), &l2)
                .await
                .unwrap_err()
        )
        .code,
        409
    );

    // In process, through the router.
    let inproc: Api<ConfigMap> = Api::namespaced(c.in_process_client(), "default");
    assert!(inproc.get("a").await.is_ok());
    let version = c
        .in_process_client()
        .apiserver_version()
        .await
        .expect("version");
    assert_eq!(version.major, "1");
}

#[tokio::test]
async fn raw_http_semantics() {
    let c = cluster().await;
    let client = c.client();
    // Malformed JSON is 400 with a Status.
    let (code, body) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        b"{nope".to_vec(),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    // Too large.
    let big = format!(
        r#"{{"metadata":{{"name":"big"}},"data":{{"k":"{}"}}}}"#,
        "x".repeat(4 * 1024 * 1024)
    );
    let (code, _) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        big.into_bytes(),
    )
    .await;
    assert_eq!(code, 413);
    // Unknown resources.
    let (code, _) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/pods",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(code, 404);
    // Wrong kind of base64.
    let (code, _) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/secrets",
        "application/json",
        br#"{"metadata":{"name":"b"},"data":{"k":"***"}}"#.to_vec(),
    )
    .await;
    assert_eq!(code, 400);
    // Watch from a compacted resourceVersion: ERROR event with 410.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("one", &[]))
        .await
        .expect("one");
    c.compact();
    let (code, body) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=1&timeoutSeconds=1",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(code, 200);
    assert!(
        body.contains(r#""type":"ERROR""#) && body.contains(r#""code":410"#),
        "{body}"
    );
    // SelfSubjectAccessReview.
    let (code, body) = raw(&client, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "application/json",
        br#"{"spec":{"resourceAttributes":{"verb":"get","resource":"secrets","namespace":"default"}}}"#.to_vec()).await;
    assert_eq!(code, 200);
    assert!(body.contains(r#""allowed":true"#), "{body}");
    // Health.
    let (code, body) = raw(
        &client,
        "GET",
        "/_testcluster/healthz",
        "text/plain",
        vec![],
    )
    .await;
    assert_eq!((code, body.as_str()), (200, "ok"));
}

#[tokio::test]
async fn target_defaults_to_the_test_cluster() {
    // The variable is only read, never set, so parallel tests are unaffected.
    if std::env::var_os(kage_testcluster::E2E_KUBECONFIG).is_some() {
        return;
    }
    let t = kage_testcluster::Target::from_env().await.expect("target");
    let tc = t.test_cluster().expect("local by default");
    assert!(t.kubeconfig_path().exists());
    assert_eq!(t.kubeconfig_path(), tc.kubeconfig_path());
    let nss: Api<Namespace> = Api::all(t.client());
    assert!(nss.get("kube-system").await.is_ok());
}

#[tokio::test]
async fn strategic_merge_on_stored_only_deployments() {
    use k8s_openapi::api::apps::v1::Deployment;
    let c = cluster().await;
    let deps: Api<Deployment> = Api::namespaced(c.client(), "default");
    create_json(
        &deps,
        json!({"metadata": {"name": "ctl"}, "spec": {
        "selector": {"matchLabels": {"app": "ctl"}},
        "template": {"metadata": {"labels": {"app": "ctl"}}, "spec": {"containers": [
            {"name": "ctl", "image": "kage:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "sidecar", "image": "side:1"}]}}}}),
    )
    .await;
    let patched = deps
        .patch(
            "ctl",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "ctl", "image": "kage:2", "env": [{"name": "B", "value": "2"}]}]}}}})),
        )
        .await
        .expect("strategic patch");
    let v = serde_json::to_value(&patched).expect("json");
    let containers = v["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(containers.len(), 2, "merged by name, sidecar kept");
    assert_eq!(containers[0]["image"], "kage:2");
    assert_eq!(
        containers[0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
    );
    assert_eq!(patched.metadata.generation, Some(2));
    assert!(
        patched.status.is_none(),
        "nothing runs stored-only resources"
    );
}

#[tokio::test]
async fn service_account_clients_and_stop() {
    let mut c = cluster().await;
    let sa = c
        .service_account_client("default", "robot")
        .expect("sa client");
    let secrets: Api<Secret> = Api::namespaced(sa, "default");
    let st = status_of(secrets.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(st.code, 403);
    assert!(
        st.message
            .contains(r#"User "system:serviceaccount:default:robot""#),
        "{}",
        st.message
    );
    let url = c.url().to_string();
    let admin: Api<Secret> = Api::namespaced(c.client(), "default");
    c.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        admin.list(&ListParams::default()).await.is_err(),
        "{url} still serves after stop"
    );
}
