//! The cluster commands against `kage-testcluster` (the in-memory Kubernetes API server), with
//! the controller's side scripted by the test: it writes the key Secrets and the
//! `kage-public-keys` ConfigMap in the documented shapes (docs/controller.md), answers a rotation
//! request, and serves canned `/v1/verify` and `/v1/reencrypt` answers behind the service proxy.
//! That pins the CLI's side of each contract, including answers the real controller rarely gives
//! (refusals, timeouts, odd key sets). The same commands against the real `kage-controller` are
//! in `controller/tests/cli.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kage_testcluster::TestCluster;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::harness::{Dir, recipient_of};

const NS: &str = "kage-system";

fn kid_of(recipient: &str) -> String {
    kage_core::keys::Kid::of_recipient_str(recipient)
        .as_str()
        .to_string()
}

/// A test cluster with a runtime to drive it, and the controller's objects.
struct World {
    rt: tokio::runtime::Runtime,
    tc: TestCluster,
    client: kube::Client,
}

impl World {
    fn new() -> World {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let tc = rt.block_on(TestCluster::start()).unwrap();
        let client = {
            let _g = rt.enter();
            tc.client()
        };
        let w = World { rt, tc, client };
        w.rt.block_on(async {
            let ns: Api<Namespace> = Api::all(w.client.clone());
            let n: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
            ns.create(&PostParams::default(), &n).await.unwrap();
        });
        w
    }

    fn kubeconfig(&self) -> &std::path::Path {
        self.tc.kubeconfig_path()
    }

    fn kage(&self, dir: &Dir, args: &[&str]) -> crate::harness::Cmd {
        dir.kage(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", dir.path(""))
    }

    /// Adds a key Secret as the controller writes it and republishes the ConfigMap.
    fn add_key(&self, identity_file: &str, created: &str) -> String {
        let recipient = recipient_of(identity_file);
        let kid = kid_of(&recipient);
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {
                "name": format!("kage-key-{kid}"),
                "labels": {"kage.dev/key": "active", "app.kubernetes.io/part-of": "kage"},
                "annotations": {"kage.dev/created": created, "kage.dev/kid": kid, "kage.dev/recipient": recipient},
            },
            "type": "Opaque",
            "stringData": {"key.txt": identity_file},
        }))
        .unwrap();
        self.rt.block_on(async {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), NS);
            api.create(&PostParams::default(), &secret).await.unwrap();
        });
        self.publish();
        kid
    }

    /// Writes `kage-public-keys` from the active key Secrets, newest first.
    fn publish(&self) {
        publish(&self.rt, &self.client);
    }

    fn key_labels(&self, client: &kube::Client) -> BTreeMap<String, String> {
        self.rt.block_on(async {
            let api: Api<Secret> = Api::namespaced(client.clone(), NS);
            let list = api.list(&Default::default()).await.unwrap();
            list.items
                .into_iter()
                .filter_map(|s| {
                    let l = s.metadata.labels?.get("kage.dev/key")?.clone();
                    Some((s.metadata.name?, l))
                })
                .collect()
        })
    }

    fn install_crd(&self) {
        let crd: CustomResourceDefinition = serde_json::from_value(json!({
            "metadata": {"name": "agesecrets.kage.dev"},
            "spec": {
                "group": "kage.dev",
                "names": {"kind": "AgeSecret", "plural": "agesecrets", "singular": "agesecret", "shortNames": ["ags"]},
                "scope": "Namespaced",
                "versions": [{
                    "name": "v1alpha1", "served": true, "storage": true,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                }],
            },
        }))
        .unwrap();
        self.rt.block_on(async {
            let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
            api.create(&PostParams::default(), &crd).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        });
    }

    /// Applies an AgeSecret and writes `status.keyIds` as the controller would.
    fn apply_agesecret(&self, ns: &str, name: &str, kids: &[&str]) {
        let gvk = GroupVersionKind::gvk("kage.dev", "v1alpha1", "AgeSecret");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "agesecrets");
        self.rt.block_on(async {
            let nsapi: Api<Namespace> = Api::all(self.client.clone());
            let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
            let _ = nsapi.create(&PostParams::default(), &n).await;
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &ar);
            let obj: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "kage.dev/v1alpha1", "kind": "AgeSecret",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"scope": "strict", "encryptedData": {}},
            }))
            .unwrap();
            api.create(&PostParams::default(), &obj).await.unwrap();
            let status = json!({"status": {"keyIds": kids}});
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .unwrap();
        });
    }
}

fn publish(rt: &tokio::runtime::Runtime, client: &kube::Client) {
    rt.block_on(async {
        let api: Api<Secret> = Api::namespaced(client.clone(), NS);
        let list = api.list(&Default::default()).await.unwrap();
        let mut keys: Vec<(String, String, String, String)> = list
            .items
            .iter()
            .filter_map(|s| {
                let a = s.metadata.annotations.as_ref()?;
                let status = s.metadata.labels.as_ref()?.get("kage.dev/key")?.clone();
                Some((
                    a.get("kage.dev/created")?.clone(),
                    a.get("kage.dev/kid")?.clone(),
                    a.get("kage.dev/recipient")?.clone(),
                    status,
                ))
            })
            .collect();
        keys.sort_by(|a, b| b.0.cmp(&a.0));
        let mut first = true;
        let mut txt = String::from("# kage cluster recipients, newest first\n");
        let doc: Vec<serde_json::Value> = keys
            .iter()
            .map(|(created, kid, recipient, status)| {
                let current = first && status == "active";
                if status == "active" {
                    first = false;
                    txt.push_str(&format!("# kid: {kid} created: {created}\n{recipient}\n"));
                }
                json!({"kid": kid, "recipient": recipient, "created": created, "status": status, "current": current})
            })
            .collect();
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kage-public-keys", "namespace": NS},
            "data": {"keys.json": json!({"keys": doc}).to_string(), "recipients.txt": txt},
        });
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
        api.patch(
            "kage-public-keys",
            &PatchParams::apply("test-controller").force(),
            &Patch::Apply(&cm),
        )
        .await
        .unwrap();
    });
}

const KAGE_YAML: &str = "\
# environments of this repo
environments:
  - name: prod
    paths: [\"prod/**\"]
    recipients:
      - age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq # old
    scope: strict
  - name: dev
    paths: [\"dev/**\"]
    recipients: [\"age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq\"]
";

#[test]
fn keys_fetch_lists_the_cluster_keys_and_writes_the_environment() {
    let w = World::new();
    let d = Dir::new();
    d.kage(&["keygen", "-o", "k1.txt"]).run().ok();
    d.kage(&["keygen", "-o", "k2.txt"]).run().ok();
    let kid1 = w.add_key(&d.read("k1.txt"), "2026-11-01T00:00:00Z");
    let kid2 = w.add_key(&d.read("k2.txt"), "2026-11-02T00:00:00Z");
    let out = w.kage(&d, &["keys", "fetch"]).run().ok();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("KID"), "{out}");
    assert!(lines[1].starts_with(&format!("{kid2}\tcurrent")), "{out}");
    assert!(lines[2].starts_with(&format!("{kid1}\tactive")), "{out}");

    d.write(".kage.yaml", KAGE_YAML);
    w.kage(&d, &["keys", "fetch", "--write-env", "prod"])
        .run()
        .ok();
    let text = d.read(".kage.yaml");
    let r1 = recipient_of(&d.read("k1.txt"));
    let r2 = recipient_of(&d.read("k2.txt"));
    assert!(text.starts_with("# environments of this repo\n"), "{text}");
    assert!(
        text.contains(&format!(
            "    recipients: [\"{r2}\", \"{r1}\"]\n    scope: strict\n"
        )),
        "{text}"
    );
    assert!(!text.contains("# old"), "{text}");
    // dev untouched
    assert!(text.ends_with(
        "    recipients: [\"age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq\"]\n"
    ));
    let list = d.kage(&["keys", "list", "--env", "prod"]).run().ok();
    assert!(list.contains(&format!("prod\t{kid2}\tcurrent")), "{list}");
    // idempotent
    let again = w.kage(&d, &["keys", "fetch", "--write-env", "prod"]).run();
    again.ok();
    assert!(again.stderr.contains("already current"), "{}", again.stderr);
    assert_eq!(d.read(".kage.yaml"), text);
}

#[test]
fn cluster_errors_are_clear() {
    let w = World::new();
    let d = Dir::new();
    // No ConfigMap: controller not found (exit 7, hint about the namespace).
    let err = w.kage(&d, &["keys", "fetch"]).run().fails(7);
    assert!(
        err.contains("kage-public-keys not found in namespace kage-system"),
        "{err}"
    );
    assert!(err.contains("--controller-namespace"), "{err}");
    // No kubeconfig at all.
    let err = d
        .kage(&["keys", "fetch"])
        .env("KUBECONFIG", "")
        .env("HOME", d.path(""))
        .run()
        .fails(7);
    assert!(err.contains("no kubeconfig"), "{err}");
    // Forbidden: a user without RBAC, the hint names what is missing.
    w.tc.add_user_token("nobody-token", "nobody", &["system:authenticated"]);
    let kc = d.path("nobody.kubeconfig");
    kage_testcluster::cluster::write_kubeconfig(&kc, w.tc.url(), w.tc.ca_pem(), "nobody-token")
        .unwrap();
    let err = d
        .kage(&[
            "keys",
            "backup",
            "-r",
            "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq",
            "-o",
            "b.age",
        ])
        .env("KUBECONFIG", &kc)
        .env("HOME", d.path(""))
        .run()
        .fails(7);
    assert!(err.contains("forbidden"), "{err}");
    assert!(err.contains("hint: ") && err.contains("secrets"), "{err}");
    assert!(!d.exists("b.age"));
}

#[test]
fn usage_retire_and_force() {
    let w = World::new();
    let d = Dir::new();
    d.kage(&["keygen", "-o", "k1.txt"]).run().ok();
    d.kage(&["keygen", "-o", "k2.txt"]).run().ok();
    let kid1 = w.add_key(&d.read("k1.txt"), "2026-11-01T00:00:00Z");
    let kid2 = w.add_key(&d.read("k2.txt"), "2026-11-02T00:00:00Z");
    w.install_crd();
    w.apply_agesecret("prod", "db", &[&kid1]);
    w.apply_agesecret("dev", "api", &[&kid1, &kid2]);

    let out = w.kage(&d, &["keys", "usage"]).run().ok();
    assert!(out.contains(&format!("{kid1}\tdev/api\n")), "{out}");
    assert!(out.contains(&format!("{kid1}\tprod/db\n")), "{out}");
    assert!(out.contains(&format!("{kid2}\tdev/api\n")), "{out}");

    let err = w.kage(&d, &["keys", "retire", &kid1]).run().fails(1);
    assert!(
        err.contains("still used by 2 AgeSecret(s): dev/api, prod/db"),
        "{err}"
    );
    assert_eq!(
        w.key_labels(&w.client)[&format!("kage-key-{kid1}")],
        "active"
    );

    let r = w.kage(&d, &["keys", "retire", &kid1, "--force"]).run();
    r.ok();
    assert!(r.stderr.contains("will stop decrypting"), "{}", r.stderr);
    assert_eq!(
        w.key_labels(&w.client)[&format!("kage-key-{kid1}")],
        "retired"
    );

    let err = w
        .kage(&d, &["keys", "retire", "0000000000000000"])
        .run()
        .fails(1);
    assert!(err.contains("no key 0000000000000000"), "{err}");
}

#[test]
fn usage_offline_reads_the_kids_of_files() {
    let d = Dir::new();
    let r1 = d.keygen("k1.txt");
    let r2 = d.keygen("k2.txt");
    d.write("s.yaml", crate::harness::secret_yaml("db", "prod"));
    d.kage(&["seal", "s.yaml", "-r", &r1, "-r", &r2, "-o", "a.yaml"])
        .run()
        .ok();
    d.kage(&["seal", "s.yaml", "-r", &r2, "-o", "b.yaml"])
        .run()
        .ok();
    let out = d.kage(&["keys", "usage", "a.yaml", "b.yaml"]).run().ok();
    let (k1, k2) = (kid_of(&r1), kid_of(&r2));
    let mut want = [
        format!("{k1}\ta.yaml"),
        format!("{k2}\ta.yaml"),
        format!("{k2}\tb.yaml"),
    ];
    want.sort();
    assert_eq!(out, format!("KID\tUSED BY\n{}\n", want.join("\n")));
}

#[test]
fn backup_then_restore_into_another_cluster() {
    let w = World::new();
    let d = Dir::new();
    d.kage(&["keygen", "-o", "k1.txt"]).run().ok();
    d.kage(&["keygen", "-o", "k2.txt"]).run().ok();
    let admin = d.keygen("admin.txt");
    let kid1 = w.add_key(&d.read("k1.txt"), "2026-11-01T00:00:00Z");
    let kid2 = w.add_key(&d.read("k2.txt"), "2026-11-02T00:00:00Z");
    w.rt.block_on(async {
        let api: Api<Secret> = Api::namespaced(w.client.clone(), NS);
        let patch = json!({"metadata": {"labels": {"kage.dev/key": "retired"}}});
        api.patch(
            &format!("kage-key-{kid1}"),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    });
    w.kage(&d, &["keys", "backup", "-r", &admin, "-o", "keys.age"])
        .run()
        .ok();
    assert_eq!(crate::harness::mode(&d.path("keys.age")), 0o600);
    let text = d.read("keys.age");
    assert!(
        text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
        "{text}"
    );
    assert!(!text.contains("AGE-SECRET-KEY"));

    let w2 = World::new();
    let err = w2
        .kage(&d, &["keys", "restore", "keys.age", "-i", "k1.txt"])
        .run()
        .fails(3);
    assert!(err.contains("cannot decrypt the backup"), "{err}");
    w2.kage(&d, &["keys", "restore", "keys.age", "-i", "admin.txt"])
        .run()
        .ok();
    let labels = w2.key_labels(&w2.client);
    assert_eq!(labels[&format!("kage-key-{kid1}")], "retired");
    assert_eq!(labels[&format!("kage-key-{kid2}")], "active");
    // creation times, kids and key material preserved
    w2.rt.block_on(async {
        let api: Api<Secret> = Api::namespaced(w2.client.clone(), NS);
        let s = api.get(&format!("kage-key-{kid2}")).await.unwrap();
        let a = s.metadata.annotations.unwrap();
        assert_eq!(a["kage.dev/created"], "2026-11-02T00:00:00Z");
        assert_eq!(a["kage.dev/kid"], kid2);
        let key = String::from_utf8(s.data.unwrap()["key.txt"].0.clone()).unwrap();
        assert_eq!(key, d.read("k2.txt"));
    });
    // idempotent
    let again = w2
        .kage(&d, &["keys", "restore", "keys.age", "-i", "admin.txt"])
        .run();
    again.ok();
    assert!(again.stderr.contains("already present"), "{}", again.stderr);
}

#[test]
fn rotate_waits_for_the_new_current_key() {
    let w = World::new();
    let d = Dir::new();
    d.kage(&["keygen", "-o", "k1.txt"]).run().ok();
    d.kage(&["keygen", "-o", "k2.txt"]).run().ok();
    let kid1 = w.add_key(&d.read("k1.txt"), "2026-11-01T00:00:00Z");
    let next = d.read("k2.txt");
    let kid2 = kid_of(&recipient_of(&next));
    // The controller's part: on a new kage.dev/rotate value, add a key and republish.
    let client = w.client.clone();
    let handle = w.rt.handle().clone();
    let rotator = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _g = handle.enter();
        for _ in 0..200 {
            let token = rt.block_on(async {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
                let cm = api.get("kage-public-keys").await.unwrap();
                cm.metadata
                    .annotations
                    .and_then(|a| a.get("kage.dev/rotate").cloned())
            });
            if let Some(token) = token {
                let recipient = recipient_of(&next);
                let kid = kid_of(&recipient);
                let secret: Secret = serde_json::from_value(json!({
                    "metadata": {
                        "name": format!("kage-key-{kid}"),
                        "labels": {"kage.dev/key": "active"},
                        "annotations": {"kage.dev/created": "2026-11-03T00:00:00Z", "kage.dev/kid": kid,
                            "kage.dev/recipient": recipient, "kage.dev/rotation-token": token},
                    },
                    "stringData": {"key.txt": next},
                }))
                .unwrap();
                rt.block_on(async {
                    let api: Api<Secret> = Api::namespaced(client.clone(), NS);
                    api.create(&PostParams::default(), &secret).await.unwrap();
                });
                publish(&rt, &client);
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    });
    let out = w.kage(&d, &["keys", "rotate", "--wait", "20"]).run().ok();
    assert!(rotator.join().unwrap());
    assert!(out.starts_with(&format!("{kid2}\t")), "{out}");
    assert_ne!(kid1, kid2);

    // Nothing answers a second request: timeout, exit 7.
    let r = w.kage(&d, &["keys", "rotate", "--wait", "1"]).run();
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(
        r.stderr.contains("error: no new key after 1s"),
        "{}",
        r.stderr
    );
}

#[test]
fn seal_cluster_uses_the_published_keys() {
    let w = World::new();
    let d = Dir::new();
    d.kage(&["keygen", "-o", "k1.txt"]).run().ok();
    let kid1 = w.add_key(&d.read("k1.txt"), "2026-11-01T00:00:00Z");
    d.write("s.yaml", crate::harness::secret_yaml("db", "prod"));
    let out = w.kage(&d, &["seal", "--cluster", "s.yaml"]).run().ok();
    assert!(out.contains(&format!("kage:v1:{kid1}:")), "{out}");
    d.write("db.yaml", &out);
    let plain = d.kage(&["unseal", "db.yaml", "-i", "k1.txt"]).run().ok();
    assert!(plain.contains("kind: Secret"), "{plain}");
}

/// Answers `/v1/reencrypt` bodies with a status and a body.
type Handler = Arc<dyn Fn(&[u8]) -> (u16, Vec<u8>) + Send + Sync>;
/// The requests the fake controller saw: path and body.
type Seen = Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// Answers one request: method, path and body to status and body.
type Route = Arc<dyn Fn(&str, &str, &[u8]) -> (u16, Vec<u8>) + Send + Sync>;

/// A real HTTP/1.1 server on 127.0.0.1 (one request per connection) answering through `route`;
/// its address and the requests it saw (path and body).
fn serve(route: Route) -> (String, Seen) {
    use std::io::{BufRead, BufReader, Read, Write};
    let seen: Seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut words = line.split_whitespace();
            let method = words.next().unwrap_or("").to_string();
            let path = words.next().unwrap_or("").to_string();
            let mut len = 0;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            seen2.lock().unwrap().push((path.clone(), body.clone()));
            let (status, answer) = route(&method, &path, &body);
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                answer.len()
            );
            let _ = conn.write_all(&answer);
        }
    });
    (addr, seen)
}

/// A canned controller HTTP API behind the service proxy: records the requests.
fn fake_controller(w: &World, verify: serde_json::Value, reencrypt: Handler) -> Seen {
    let (addr, seen) = serve(Arc::new(move |_, path, body| {
        if path.ends_with("/v1/verify") {
            (200, verify.to_string().into_bytes())
        } else {
            reencrypt(body)
        }
    }));
    w.rt.block_on(async {
        let api: Api<Service> = Api::namespaced(w.client.clone(), NS);
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "kage-controller"},
            "spec": {"ports": [{"name": "http", "port": 8080}]},
        }))
        .unwrap();
        api.create(&PostParams::default(), &svc).await.unwrap();
    });
    w.tc.register_upstream(NS, "kage-controller", &addr);
    seen
}

#[test]
fn validate_cluster_reports_the_controllers_answer() {
    let w = World::new();
    let d = Dir::new();
    let r = d.keygen("k1.txt");
    d.seal_secret("db", "prod", &r, "db.yaml");
    let seen = fake_controller(
        &w,
        json!({"ok": false, "reason": "DecryptFailed", "message": "password: authentication failed", "form": "sealed", "keyIds": [kid_of(&r)], "keys": ["password"]}),
        Arc::new(|_| (500, b"{}".to_vec())),
    );
    let run = w.kage(&d, &["validate", "--cluster", "db.yaml"]).run();
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.out()
            .contains("db.yaml: prod/db: FAILED: DecryptFailed: password: authentication failed"),
        "{}",
        run.out()
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].0, "/v1/verify");
    let body: serde_json::Value = serde_json::from_slice(&seen[0].1).unwrap();
    assert_eq!(body["kind"], "AgeSecret");
    assert_eq!(body["metadata"]["name"], "db");
}

#[test]
fn validate_cluster_ok() {
    let w = World::new();
    let d = Dir::new();
    let r = d.keygen("k1.txt");
    d.seal_secret("db", "prod", &r, "db.yaml");
    fake_controller(
        &w,
        json!({"ok": true, "reason": "Decrypted", "message": "", "form": "sealed", "keyIds": [kid_of(&r)], "keys": ["password"]}),
        Arc::new(|_| (500, b"{}".to_vec())),
    );
    let out = w.kage(&d, &["validate", "--cluster", "db.yaml"]).run().ok();
    assert!(out.contains("db.yaml: prod/db: ok"), "{out}");
    // No controller Service upstream in another namespace: exit 7 with a hint.
    let err = w
        .kage(
            &d,
            &[
                "validate",
                "--cluster",
                "--controller-namespace",
                "elsewhere",
                "db.yaml",
            ],
        )
        .run()
        .fails(7);
    assert!(err.contains("controller not reachable"), "{err}");
}

#[test]
fn reencrypt_through_the_controller_writes_the_new_values_back() {
    let w = World::new();
    let d = Dir::new();
    let old = d.keygen("old.txt");
    d.kage(&["keygen", "-o", "new.txt"]).run().ok();
    let new_kid = w.add_key(&d.read("new.txt"), "2026-11-05T00:00:00Z");
    let extra = d.keygen("extra.txt");
    d.write(
        ".kage.yaml",
        format!("environments:\n  - name: prod\n    paths: [\"prod/**\"]\n    recipients: [\"{old}\"]\n    extraRecipients: [\"{extra}\"]\n"),
    );
    d.write("s.yaml", crate::harness::secret_yaml("db", "prod"));
    d.write("prod/.keep", "");
    d.kage(&["seal", "s.yaml", "--env", "prod", "-o", "prod/db.yaml"])
        .run()
        .ok();
    // The "controller" re-seals: here, offline with kage itself to the new key + extra.
    let dir = d.path("");
    let new_rec = recipient_of(&d.read("new.txt"));
    let extra2 = extra.clone();
    let seen = fake_controller(
        &w,
        json!({}),
        Arc::new(move |body: &[u8]| {
            let req: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(req["extraRecipients"], json!([extra2]));
            let p = dir.join("req.json");
            std::fs::write(&p, req["ageSecret"].to_string()).unwrap();
            let out = std::process::Command::new(crate::harness::kage_bin())
                .args([
                    "reencrypt",
                    "-i",
                    "old.txt",
                    "-r",
                    &new_rec,
                    "-r",
                    &extra2,
                    "req.json",
                ])
                .current_dir(&dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            (200, std::fs::read(&p).unwrap())
        }),
    );
    let before = d.read("prod/db.yaml");
    let r = w.kage(&d, &["reencrypt", "prod/db.yaml"]).run();
    r.ok();
    assert!(
        r.stderr.contains("re-encrypted by the controller"),
        "{}",
        r.stderr
    );
    let after = d.read("prod/db.yaml");
    assert_ne!(before, after);
    assert!(
        after.starts_with("apiVersion: kage.dev/v1alpha1\n"),
        "{after}"
    );
    let (a, b) = (new_kid.clone(), kid_of(&extra));
    assert!(
        after.contains(&format!("kage:v1:{a},{b}:"))
            || after.contains(&format!("kage:v1:{b},{a}:")),
        "{after}"
    );
    assert!(!after.contains(&kid_of(&old)), "{after}");
    assert_eq!(seen.lock().unwrap()[0].0, "/v1/reencrypt");
    // Already current: no request, file unchanged.
    let r = w.kage(&d, &["reencrypt", "prod/db.yaml"]).run();
    r.ok();
    assert!(r.stderr.contains("already current"), "{}", r.stderr);
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(d.read("prod/db.yaml"), after);
}

#[test]
fn reencrypt_through_the_controller_writes_nothing_when_one_file_is_refused() {
    let w = World::new();
    let d = Dir::new();
    let old = d.keygen("old.txt");
    d.kage(&["keygen", "-o", "new.txt"]).run().ok();
    w.add_key(&d.read("new.txt"), "2026-11-05T00:00:00Z");
    for name in ["a", "b"] {
        d.seal_secret(name, "prod", &old, &format!("{name}.yaml"));
    }
    // The "controller" answers a and refuses b.
    fake_controller(
        &w,
        json!({}),
        Arc::new(|body: &[u8]| {
            let req: serde_json::Value = serde_json::from_slice(body).unwrap();
            if req["ageSecret"]["metadata"]["name"] == "b" {
                let refusal = json!({"ok": false, "reason": "DecryptFailed", "message": "password: authentication failed"});
                (422, refusal.to_string().into_bytes())
            } else {
                // A changed answer for a: written, were b not refused.
                let mut ags = req["ageSecret"].clone();
                for v in ags["spec"]["encryptedData"]
                    .as_object_mut()
                    .unwrap()
                    .values_mut()
                {
                    *v = json!("kage:v1:0000000000000000:AAAA");
                }
                (200, ags.to_string().into_bytes())
            }
        }),
    );
    let (a, b) = (d.read("a.yaml"), d.read("b.yaml"));
    let err = w
        .kage(&d, &["reencrypt", "a.yaml", "b.yaml"])
        .run()
        .fails(4);
    assert!(
        err.contains("b.yaml: the controller refused to re-encrypt"),
        "{err}"
    );
    assert!(!err.contains("a.yaml: re-encrypted"), "{err}");
    assert_eq!(
        d.read("a.yaml"),
        a,
        "a.yaml written although b.yaml was refused"
    );
    assert_eq!(d.read("b.yaml"), b);
}

/// `kage … --controller-url URL` with no kubeconfig, against the test's HTTP server.
fn direct(d: &Dir, url: &str, args: &[&str]) -> crate::harness::Cmd {
    let mut all = args.to_vec();
    all.extend(["--controller-url", url]);
    d.kage(&all).env("KUBECONFIG", "").env("HOME", d.path(""))
}

#[test]
fn controller_url_reaches_the_http_api_without_a_kubeconfig() {
    let d = Dir::new();
    let old = d.keygen("old.txt");
    let new = d.keygen("new.txt");
    let keys = json!({"keys": [{"kid": kid_of(&new), "recipient": new, "created": "2026-11-05T00:00:00Z", "status": "active", "current": true}]});
    let verify = json!({"ok": true, "reason": "Decrypted", "message": "", "form": "sealed", "keyIds": [kid_of(&new)], "keys": ["password"]});
    let dir = d.path("");
    let new2 = new.clone();
    let (addr, seen) = serve(Arc::new(move |method, path, body| {
        match (method, path) {
            ("GET", "/v1/keys") => (200, keys.to_string().into_bytes()),
            ("POST", "/v1/verify") => (200, verify.to_string().into_bytes()),
            ("POST", "/v1/reencrypt") => {
                // re-sealed offline with kage itself, as the controller would
                let req: serde_json::Value = serde_json::from_slice(body).unwrap();
                let p = dir.join("req.json");
                std::fs::write(&p, req["ageSecret"].to_string()).unwrap();
                let out = std::process::Command::new(crate::harness::kage_bin())
                    .args(["reencrypt", "-i", "old.txt", "-r", &new2, "req.json"])
                    .current_dir(&dir)
                    .output()
                    .unwrap();
                assert!(out.status.success());
                (200, std::fs::read(&p).unwrap())
            }
            _ => (404, br#"{"error":"not found"}"#.to_vec()),
        }
    }));
    let url = format!("http://{addr}");

    let out = direct(&d, &url, &["keys", "fetch"]).run().ok();
    assert!(out.contains(&format!("{}\tcurrent", kid_of(&new))), "{out}");
    d.write("s.yaml", crate::harness::secret_yaml("db", "prod"));
    let sealed = direct(&d, &url, &["seal", "--cluster", "s.yaml"])
        .run()
        .ok();
    assert!(
        sealed.contains(&format!("kage:v1:{}:", kid_of(&new))),
        "{sealed}"
    );
    d.write("sealed.yaml", &sealed);
    d.kage(&["unseal", "sealed.yaml", "-i", "new.txt"])
        .run()
        .ok();
    let out = direct(&d, &url, &["validate", "--cluster", "sealed.yaml"])
        .run()
        .ok();
    assert!(out.contains("sealed.yaml: prod/db: ok"), "{out}");
    d.seal_secret("db", "prod", &old, "db.yaml");
    direct(&d, &url, &["reencrypt", "db.yaml"]).run().ok();
    let after = d.read("db.yaml");
    assert!(
        after.contains(&format!("kage:v1:{}:", kid_of(&new))),
        "{after}"
    );
    assert!(!after.contains(&kid_of(&old)), "{after}");
    let paths: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    assert!(paths.iter().any(|p| p == "/v1/reencrypt"), "{paths:?}");

    // The commands that need the Kubernetes API say so (exit 7), no panic.
    for args in [
        &["keys", "rotate"][..],
        &["keys", "retire", "0123456789abcdef"],
        &["keys", "usage"],
        &["keys", "backup", "-r", &old, "-o", "b.age"],
    ] {
        let err = direct(&d, &url, args).run().fails(7);
        assert!(err.contains("no kubeconfig"), "{args:?}: {err}");
    }
    // Not an http(s) URL: a usage error.
    let err = direct(&d, "localhost:8080", &["keys", "fetch"])
        .run()
        .fails(2);
    assert!(err.contains("not an http(s) URL"), "{err}");
}

#[test]
fn controller_url_with_a_kubeconfig() {
    let w = World::new();
    let d = Dir::new();
    d.kage(&["keygen", "-o", "k1.txt"]).run().ok();
    let kid = w.add_key(&d.read("k1.txt"), "2026-11-01T00:00:00Z");
    w.install_crd();
    w.apply_agesecret("prod", "db", &[&kid]);
    let (addr, _) = serve(Arc::new(|_, _, _| (404, Vec::new())));
    let url = format!("http://{addr}");
    // The Kubernetes API answers what it holds; the URL serves only the controller's HTTP API.
    let out = w
        .kage(&d, &["keys", "fetch", "--controller-url", &url])
        .run()
        .ok();
    assert!(out.contains(&format!("{kid}\tcurrent")), "{out}");
    let out = w
        .kage(&d, &["keys", "usage", "--controller-url", &url])
        .run()
        .ok();
    assert!(out.contains(&format!("{kid}\tprod/db")), "{out}");
}
