//! A test host of our own for the real API server's service proxy.
//!
//! kube-apiserver refuses Endpoints in 127.0.0.0/8, and it binds only loopback itself, so a
//! controller it can both be reached by and reach runs in this network namespace's host-side
//! view: a veth pair whose peer lives in a namespace made for the test (`ip netns`, iproute2;
//! the tests run as root). The controller's HTTP API listens on the host end's 10.213.x.y
//! address; nothing else on the machine is ever used as a target. Dropped: the namespace (and
//! with it both ends of the pair) is deleted.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::e2e::eventually;

pub(crate) struct HostNet {
    netns: String,
    /// The address the controller listens on (the host end of the pair).
    pub(crate) ip: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl HostNet {
    /// A namespace with a veth pair on a /30 of 10.213.0.0/16 that no other test uses.
    pub(crate) fn new() -> HostNet {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let mut last = String::new();
        for _ in 0..64 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let idx = (std::process::id().wrapping_mul(97).wrapping_add(n)) % 16_000;
            let (a, b) = (idx / 64, (idx % 64) * 4);
            let netns = format!("kage-e2e-{idx}");
            let (host, peer) = (format!("kgh{idx}"), format!("kgp{idx}"));
            let host_ip = format!("10.213.{a}.{}", b + 1);
            let peer_ip = format!("10.213.{a}.{}", b + 2);
            let setup = || -> Result<(), String> {
                ip(&["netns", "add", &netns])?;
                ip(&[
                    "link", "add", &host, "type", "veth", "peer", "name", &peer, "netns", &netns,
                ])?;
                ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host])?;
                ip(&["link", "set", &host, "up"])?;
                ip(&[
                    "-n",
                    &netns,
                    "addr",
                    "add",
                    &format!("{peer_ip}/30"),
                    "dev",
                    &peer,
                ])?;
                ip(&["-n", &netns, "link", "set", &peer, "up"])?;
                ip(&["-n", &netns, "link", "set", "lo", "up"])
            };
            match setup() {
                Ok(()) => {
                    return HostNet { netns, ip: host_ip };
                }
                Err(e) => {
                    let _ = ip(&["netns", "del", &netns]);
                    last = e;
                }
            }
        }
        panic!("no network namespace for the service-proxy test: {last}");
    }
}

impl Drop for HostNet {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.netns]) {
            eprintln!("{e}");
        }
    }
}

/// Make the real API server's service proxy reach `ip:port` as `kage-system/kage-controller:http`:
/// a Pod object matching the Service's selector (it never runs: there is no kubelet) whose status
/// says Running and Ready at `ip`, so the endpoints controller of kube-controller-manager writes
/// Endpoints with a targetRef to it, which is what the proxy demands. The endpoints controllers
/// skip Pods without a Node, so the Pod is bound to a Node object that never reports status
/// (the node lifecycle controller marks Pods not ready only when a Ready Node stops being so).
/// The Pod meets the namespace's `restricted` Pod Security level, like deploy/'s Deployment.
pub(crate) async fn publish_pod(admin: &Client, ip: &str, port: u16) {
    let nodes: Api<Node> = Api::all(admin.clone());
    let node: Node =
        serde_json::from_value(json!({"metadata": {"name": "kage-test-host"}})).unwrap();
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("create the Node object: {e}"),
    }
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "kage-system");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": "kage-controller-test",
            "labels": {"app.kubernetes.io/name": "kage-controller", "app.kubernetes.io/part-of": "kage"}
        },
        "spec": {
            "nodeName": "kage-test-host",
            "serviceAccountName": "kage-controller",
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "controller",
                "image": "kage-controller:test",
                "ports": [{"name": "http", "containerPort": port}],
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}
            }]
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create the controller's Pod object");
    let now = jiff::Timestamp::now().to_string();
    let status = json!({
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}
            ]
        }
    });
    pods.patch_status(
        "kage-controller-test",
        &PatchParams::default(),
        &Patch::Merge(&status),
    )
    .await
    .expect("patch the Pod's status");
    let eps: Api<Endpoints> = Api::namespaced(admin.clone(), "kage-system");
    let published = eventually(std::time::Duration::from_secs(30), || async {
        eps.get_opt("kage-controller")
            .await
            .ok()
            .flatten()
            .and_then(|e| e.subsets)
            .is_some_and(|s| {
                s.iter().any(|s| {
                    s.addresses
                        .iter()
                        .flatten()
                        .any(|a| a.ip == ip && a.target_ref.is_some())
                })
            })
    })
    .await;
    assert!(
        published,
        "kube-controller-manager wrote no Endpoints for {ip}"
    );
}
