//! Shared helpers.

use kage_testcluster::TestCluster;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

pub async fn cluster() -> TestCluster {
    TestCluster::start().await.expect("test cluster starts")
}

pub fn status_of(err: kube::Error) -> Box<kube::core::Status> {
    match err {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// GET/POST/… a raw path with the client's credentials; returns (status code, body).
pub async fn raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    ct: &str,
    body: Vec<u8>,
) -> (u16, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, ct)
        .body(body)
        .expect("request builds");
    match client.request_text(req).await {
        Ok(t) => (200, t),
        Err(kube::Error::Api(s)) => (s.code, serde_json::to_string(&s).unwrap_or_default()),
        Err(e) => panic!("transport error for {method} {path}: {e:?}"),
    }
}

pub fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wd"], "categories": ["all"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
            }]
        }
    })
}

pub async fn create_json<K>(api: &Api<K>, v: Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(v).expect("valid object");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("create")
}
