//! End-to-end: the real `kage-controller` binary against `kage-testcluster`, authenticated as its
//! ServiceAccount with the RBAC from `deploy/`, the manifests applied with the real `kubectl`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kage_core::api::v1alpha1::{AgeSecret, AgeSecretBody, AgeSecretSpec};
use kage_core::keys::{Identity, Recipient, parse_recipients};
use kage_core::sealed::{self, Binding, Scope};
use kage_testcluster::{Server, Target};

use crate::hostnet::{self, HostNet};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

pub(crate) fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

pub(crate) fn kubectl() -> String {
    std::env::var("KAGE_TEST_KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

/// `kubectl kustomize deploy/base`, minus the Deployment (the test server runs no pods: the
/// controller runs here as a process), applied with `kubectl apply`.
pub(crate) async fn apply_base(kubeconfig: &Path) {
    let rendered = tokio::process::Command::new(kubectl())
        .arg("kustomize")
        .arg(repo_file("deploy/base"))
        .output()
        .await
        .expect("kubectl");
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let text = String::from_utf8(rendered.stdout).unwrap();
    let docs: Vec<&str> = text
        .split("\n---\n")
        .filter(|d| !d.contains("\nkind: Deployment\n"))
        .collect();
    let mut child = tokio::process::Command::new(kubectl())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(docs.join("\n---\n").as_bytes())
            .await
            .unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "kubectl apply deploy/base: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start one `kage-controller` replica; its log goes to `<dir>/<name>.log`.
pub(crate) fn spawn_controller(
    kc: &Path,
    dir: &Path,
    name: &str,
    http_host: &str,
    extra_args: &[&str],
) -> (Child, String, String) {
    let (hp, mp) = (free_port(), free_port());
    let http = format!("{http_host}:{hp}");
    let metrics = format!("127.0.0.1:{mp}");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .unwrap();
    // KAGE_CONTROLLER_BIN: measure another build (e.g. release) of the same binary.
    let bin = std::env::var("KAGE_CONTROLLER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_kage-controller").to_string());
    let controller = Command::new(bin)
        .env("KUBECONFIG", kc)
        .env("RUST_LOG", "info,kage_controller=debug")
        .env("POD_NAME", name)
        .env("MALLOC_ARENA_MAX", "2")
        .env_remove("POD_NAMESPACE")
        .args(["--namespace", "kage-system", "--http-addr", &http])
        .args(["--metrics-addr", &metrics, "--log-format", "json"])
        .args(extra_args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("kage-controller starts");
    (controller, http, metrics)
}

pub(crate) async fn stop_child(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(25),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A test cluster with deploy/base applied and the controller running as its ServiceAccount.
pub(crate) struct Env {
    pub(crate) cluster: Target,
    pub(crate) admin: Client,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) controller: Option<Child>,
    pub(crate) http: String,
    pub(crate) metrics: String,
    /// On a real control plane: the address the service proxy can reach the HTTP API at.
    pub(crate) net: Option<HostNet>,
}

impl Env {
    pub(crate) async fn start(server: Server, extra_args: &[&str]) -> Env {
        let mut env = Env::installed(server).await;
        env.launch(extra_args).await;
        env
    }

    /// A test cluster with deploy/base applied and the controller's kubeconfig written, but no
    /// controller running yet (see [`Env::launch`]).
    pub(crate) async fn installed(server: Server) -> Env {
        // A control plane per test: the controller watches every namespace and owns kage-system.
        let cluster = Target::start(server).await.expect("cluster starts");
        let admin = cluster.client();
        apply_base(&cluster.kubeconfig_path()).await;
        let dir = tempfile::tempdir().unwrap();
        // A real cluster: the TokenRequest API, the token bound by deploy/base's RBAC only.
        let token = cluster
            .service_account_token("kage-system", "kage-controller")
            .await
            .unwrap();
        let kc = dir.path().join("controller.kubeconfig");
        cluster.write_token_kubeconfig(&kc, &token).unwrap();
        let net = (server == Server::Kubernetes).then(HostNet::new);
        Env {
            cluster,
            admin,
            dir,
            controller: None,
            http: String::new(),
            metrics: String::new(),
            net,
        }
    }

    /// Start the main replica (its log: `controller.log`, appended to across restarts) and wait
    /// until it is ready.
    pub(crate) async fn launch(&mut self, extra_args: &[&str]) {
        assert!(self.controller.is_none(), "controller already running");
        let (controller, http, metrics) = spawn_controller(
            &self.dir.path().join("controller.kubeconfig"),
            self.dir.path(),
            "controller",
            self.http_host(),
            extra_args,
        );
        self.controller = Some(controller);
        self.http = http;
        self.metrics = metrics;
        self.wait_ready().await;
    }

    /// SIGKILL the main replica: no graceful shutdown, the Lease is not released.
    pub(crate) fn kill(&mut self) {
        let mut child = self.controller.take().expect("controller running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("controller.log")).unwrap_or_default()
    }

    pub(crate) async fn wait_ready(&self) {
        let url = format!("http://{}/readyz", self.http);
        let ok = eventually(Duration::from_secs(20), || async {
            http_get(&url).await.is_some_and(|(code, _)| code == 200)
        })
        .await;
        assert!(ok, "controller not ready; log:\n{}", self.log());
    }

    pub(crate) async fn namespace(&self, name: &str) {
        let api: Api<Namespace> = Api::all(self.admin.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        let _ = api.create(&PostParams::default(), &ns).await;
    }

    /// The published recipients (waiting for the first publication).
    pub(crate) async fn recipients(&self) -> Vec<Recipient> {
        let api: Api<ConfigMap> = Api::namespaced(self.admin.clone(), "kage-system");
        let published = eventually(Duration::from_secs(20), || async {
            api.get_opt("kage-public-keys")
                .await
                .ok()
                .flatten()
                .is_some()
        })
        .await;
        assert!(published, "no kage-public-keys; log:\n{}", self.log());
        let cm = api.get("kage-public-keys").await.unwrap();
        parse_recipients(&cm.data.unwrap()["recipients.txt"]).unwrap()
    }

    pub(crate) async fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.controller.take().unwrap();
        stop_child(&mut child).await
    }

    /// A second replica with the same ServiceAccount.
    pub(crate) fn replica(&self, name: &str, extra_args: &[&str]) -> (Child, String) {
        let (child, http, _) = spawn_controller(
            &self.dir.path().join("controller.kubeconfig"),
            self.dir.path(),
            name,
            self.http_host(),
            extra_args,
        );
        (child, http)
    }

    /// Where the HTTP API listens: loopback, or the test's own host address on a real
    /// control plane (the service proxy refuses loopback endpoints).
    fn http_host(&self) -> &str {
        self.net.as_ref().map_or("127.0.0.1", |n| n.ip.as_str())
    }

    /// Route the API server's service proxy for `kage-system/kage-controller:http` to the
    /// running main replica: an upstream of kage-testcluster, or on a real control plane a Pod
    /// object at the test's host address that kube-controller-manager turns into Endpoints.
    pub(crate) async fn expose_http(&self) {
        match (&self.cluster, &self.net) {
            (Target::Local(tc), _) => {
                tc.register_upstream("kage-system", "kage-controller", &self.http)
            }
            (_, Some(net)) => {
                let port = self.http.rsplit(':').next().unwrap().parse().unwrap();
                hostnet::publish_pod(&self.admin, &net.ip, port).await;
            }
            (_, None) => panic!("no host address for the service proxy"),
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(mut c) = self.controller.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A tiny HTTP/1.1 client (no extra dependency): (status, body).
pub(crate) async fn http_request(
    method: &str,
    url: &str,
    body: Option<&str>,
) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_at(rest.find('/')?);
    let mut s = tokio::net::TcpStream::connect(host).await.ok()?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

pub(crate) async fn http_get(url: &str) -> Option<(u16, String)> {
    http_request("GET", url, None).await
}

pub(crate) fn sealed_ags(
    ns: &str,
    name: &str,
    values: &[(&str, &str)],
    to: &[Recipient],
) -> AgeSecret {
    let mut spec = AgeSecretSpec::default();
    for (k, v) in values {
        let b = Binding::new(Scope::Strict, ns, name, k);
        spec.encrypted_data
            .insert(k.to_string(), sealed::seal(v.as_bytes(), &b, to).unwrap());
    }
    let mut ags = AgeSecret::new(name, AgeSecretBody { spec, sops: None });
    ags.metadata.namespace = Some(ns.into());
    ags
}

pub(crate) async fn ready_condition(api: &Api<AgeSecret>, name: &str) -> Option<(String, String)> {
    let a = api.get(name).await.ok()?;
    let c = a.status?.condition("Ready")?.clone();
    Some((c.status, c.reason))
}

pub(crate) async fn wait_reason(
    api: &Api<AgeSecret>,
    name: &str,
    status: &str,
    reason: &str,
) -> bool {
    eventually(Duration::from_secs(15), || async {
        ready_condition(api, name)
            .await
            .is_some_and(|(s, r)| s == status && r == reason)
    })
    .await
}

pub(crate) fn data_of(s: &Secret, key: &str) -> Option<Vec<u8>> {
    s.data.as_ref()?.get(key).map(|b| b.0.clone())
}

/// Each scenario once per server: `<name>::test_cluster` and `<name>::kubernetes` (a real
/// control plane of its own, started through scripts/k8s.sh).
macro_rules! on_both_servers {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn test_cluster() {
                super::$name(kage_testcluster::Server::TestCluster).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn kubernetes() {
                super::$name(kage_testcluster::Server::Kubernetes).await
            }
        }
    )*};
}
pub(crate) use on_both_servers;

on_both_servers!(
    first_key_is_generated_and_published,
    agesecret_lifecycle_with_drift,
    never_clobbers_and_binding_is_enforced,
    restored_key_retries_failed_objects_at_once,
    injected_keys_are_never_loaded_published_or_used,
    rotation_on_request_and_graceful_shutdown,
    standby_takes_over_when_the_leader_stops,
    watch_namespaces_limits_the_scope,
    sops_form_round_trips_through_the_cluster,
    killed_leader_is_replaced_and_restart_converges,
    less_rbac_than_deploy_base_is_refused,
);

/// The ServiceAccount's token carries exactly deploy/base's RBAC: with `patch` on Secrets taken
/// out of the ClusterRole, the server refuses the controller's apply (403) and no Secret appears.
async fn less_rbac_than_deploy_base_is_refused(server: Server) {
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let mut env = Env::installed(server).await;
    let roles: Api<ClusterRole> = Api::all(env.admin.clone());
    let mut role = roles.get("kage-controller").await.unwrap();
    let rules = role.rules.as_mut().unwrap();
    let secrets = rules
        .iter_mut()
        .find(|r| {
            r.resources
                .as_ref()
                .is_some_and(|r| r.iter().any(|r| r == "secrets"))
        })
        .expect("a Secrets rule in deploy/base");
    secrets.verbs.retain(|v| v != "patch");
    roles
        .replace("kage-controller", &PostParams::default(), &role)
        .await
        .unwrap();
    env.launch(&[]).await;
    env.namespace("prod").await;
    let to = env.recipients().await;
    let ags: Api<AgeSecret> = Api::namespaced(env.admin.clone(), "prod");
    ags.create(
        &PostParams::default(),
        &sealed_ags("prod", "db", &[("password", "hunter2")], &to),
    )
    .await
    .unwrap();
    let refused = eventually(Duration::from_secs(30), || async {
        let log = env.log();
        log.contains("reconcile failed") && log.contains("forbidden")
    })
    .await;
    assert!(refused, "no 403 for the Secret apply; log:\n{}", env.log());
    let secrets: Api<Secret> = Api::namespaced(env.admin.clone(), "prod");
    assert!(secrets.get_opt("db").await.unwrap().is_none());
}

async fn first_key_is_generated_and_published(server: Server) {
    let env = Env::start(server, &[]).await;
    let recipients = env.recipients().await;
    assert_eq!(recipients.len(), 1, "one key on first start");
    let kid = recipients[0].kid();
    // The key Secret, labelled active.
    let secrets: Api<Secret> = Api::namespaced(env.admin.clone(), "kage-system");
    let key = secrets.get(&format!("kage-key-{kid}")).await.unwrap();
    assert_eq!(key.metadata.labels.unwrap()["kage.dev/key"], "active");
    // /v1/keys agrees.
    let (code, body) = http_get(&format!("http://{}/v1/keys", env.http))
        .await
        .unwrap();
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["keys"][0]["kid"], kid.to_string());
    assert_eq!(v["keys"][0]["current"], true);
    // Metrics are served.
    let (code, m) = http_get(&format!("http://{}/metrics", env.metrics))
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert!(m.contains("kage_keys{status=\"active\"} 1"), "{m}");
    assert!(
        !env.log().contains("AGE-SECRET-KEY"),
        "key material in the log"
    );
}

async fn agesecret_lifecycle_with_drift(server: Server) {
    let env = Env::start(server, &[]).await;
    env.namespace("prod").await;
    let to = env.recipients().await;
    let ags_api: Api<AgeSecret> = Api::namespaced(env.admin.clone(), "prod");
    let secrets: Api<Secret> = Api::namespaced(env.admin.clone(), "prod");
    let ags = sealed_ags(
        "prod",
        "db",
        &[("password", "hunter2"), ("user", "admin")],
        &to,
    );
    ags_api.create(&PostParams::default(), &ags).await.unwrap();
    assert!(
        wait_reason(&ags_api, "db", "True", "Decrypted").await,
        "not Ready; log:\n{}",
        env.log()
    );
    let s = secrets.get("db").await.unwrap();
    assert_eq!(data_of(&s, "password").unwrap(), b"hunter2");
    assert_eq!(data_of(&s, "user").unwrap(), b"admin");
    assert_eq!(
        s.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
        "kage"
    );
    assert_eq!(
        s.metadata.owner_references.as_ref().unwrap()[0].kind,
        "AgeSecret"
    );
    let status = ags_api.get("db").await.unwrap().status.unwrap();
    assert_eq!(status.key_ids, vec![to[0].kid().to_string()]);
    assert_eq!(status.secret_name.as_deref(), Some("db"));
    assert_eq!(status.observed_generation, Some(1));

    // kubectl wait works on the condition.
    let out = tokio::process::Command::new(kubectl())
        .arg("--kubeconfig")
        .arg(env.cluster.kubeconfig_path())
        .args([
            "-n",
            "prod",
            "wait",
            "--for=condition=Ready",
            "ags/db",
            "--timeout=10s",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Drift: an edited value is restored.
    secrets
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"password": "ZWRpdGVk"}})),
        )
        .await
        .unwrap();
    let restored = eventually(Duration::from_secs(10), || async {
        secrets
            .get("db")
            .await
            .ok()
            .and_then(|s| data_of(&s, "password"))
            .is_some_and(|v| v == b"hunter2")
    })
    .await;
    assert!(restored, "edited Secret not restored; log:\n{}", env.log());

    // Drift: a deleted Secret is recreated.
    secrets
        .delete("db", &DeleteParams::default())
        .await
        .unwrap();
    let recreated = eventually(Duration::from_secs(10), || async {
        secrets.get("db").await.is_ok()
    })
    .await;
    assert!(
        recreated,
        "deleted Secret not recreated; log:\n{}",
        env.log()
    );

    // A value removed from the AgeSecret disappears from the Secret.
    let mut current = ags_api.get("db").await.unwrap();
    current.spec.spec.encrypted_data.remove("user");
    current.metadata.managed_fields = None;
    ags_api
        .replace("db", &PostParams::default(), &current)
        .await
        .unwrap();
    let gone = eventually(Duration::from_secs(10), || async {
        secrets
            .get("db")
            .await
            .ok()
            .is_some_and(|s| data_of(&s, "user").is_none() && data_of(&s, "password").is_some())
    })
    .await;
    assert!(gone, "removed value still there; log:\n{}", env.log());
    assert!(!env.log().contains("hunter2"), "plaintext in the log");
}

async fn never_clobbers_and_binding_is_enforced(server: Server) {
    let env = Env::start(server, &[]).await;
    env.namespace("prod").await;
    let to = env.recipients().await;
    let ags_api: Api<AgeSecret> = Api::namespaced(env.admin.clone(), "prod");
    let secrets: Api<Secret> = Api::namespaced(env.admin.clone(), "prod");
    // Someone else's Secret.
    let theirs: Secret = serde_json::from_value(json!({
        "metadata": {"name": "taken"}, "data": {"k": "dGhlaXJz"}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    let ags = sealed_ags("prod", "taken", &[("k", "mine")], &to);
    ags_api.create(&PostParams::default(), &ags).await.unwrap();
    assert!(wait_reason(&ags_api, "taken", "False", "SecretNotManaged").await);
    assert_eq!(
        data_of(&secrets.get("taken").await.unwrap(), "k").unwrap(),
        b"theirs"
    );

    // A value copied from another AgeSecret: ScopeMismatch, nothing written.
    let other = sealed_ags("prod", "original", &[("k", "v")], &to);
    let mut copy = other.clone();
    copy.metadata.name = Some("copy".into());
    ags_api.create(&PostParams::default(), &copy).await.unwrap();
    assert!(wait_reason(&ags_api, "copy", "False", "ScopeMismatch").await);
    assert!(secrets.get_opt("copy").await.unwrap().is_none());
}

async fn restored_key_retries_failed_objects_at_once(server: Server) {
    let env = Env::start(server, &[]).await;
    env.namespace("prod").await;
    let lost = Identity::generate();
    let ags_api: Api<AgeSecret> = Api::namespaced(env.admin.clone(), "prod");
    let ags = sealed_ags("prod", "old", &[("k", "v")], &[lost.recipient()]);
    ags_api.create(&PostParams::default(), &ags).await.unwrap();
    assert!(wait_reason(&ags_api, "old", "False", "UnknownKey").await);
    // Restore the lost key as `kage keys restore` would.
    let secrets: Api<Secret> = Api::namespaced(env.admin.clone(), "kage-system");
    let file = kage_core::keys::format_identity_file(&lost, jiff::Timestamp::now());
    let key: Secret = serde_json::from_value(json!({
        "metadata": {"name": "restored-key", "labels": {"kage.dev/key": "active"}},
        "type": "Opaque",
    }))
    .unwrap();
    let mut key = key;
    key.data = Some([("key.txt".to_string(), ByteString(file.as_bytes().to_vec()))].into());
    // Authenticated under the ring's key, as `kage keys restore` does (docs/security.md).
    let tag = ring_auth_key(&env.admin).await.authenticate(
        "kage-system",
        "restored-key",
        std::slice::from_ref(&lost),
    );
    key.metadata.annotations = Some([("kage.dev/key-auth".to_string(), tag)].into());
    secrets.create(&PostParams::default(), &key).await.unwrap();
    let start = Instant::now();
    assert!(
        wait_reason(&ags_api, "old", "True", "Decrypted").await,
        "log:\n{}",
        env.log()
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "not retried at once"
    );
}

/// The ring authentication key (`kage-keyring-auth`), as a key administrator reads it.
pub(crate) async fn ring_auth_key(admin: &Client) -> kage_core::keysecret::RingAuthKey {
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "kage-system");
    let s = secrets.get("kage-keyring-auth").await.unwrap();
    kage_core::keysecret::RingAuthKey::from_bytes(&s.data.unwrap()["hmac-sha256.key"].0).unwrap()
}

/// Warning events in kage-system with this reason, by the name of the object they regard.
async fn events_regarding(admin: &Client, reason: &str) -> Vec<String> {
    use k8s_openapi::api::events::v1::Event;
    let api: Api<Event> = Api::namespaced(admin.clone(), "kage-system");
    let Ok(list) = api.list(&Default::default()).await else {
        return Vec::new();
    };
    list.items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.regarding?.name)
        .collect()
}

/// The key-injection finding of the attack run: an identity planted through an AgeSecret in
/// the controller's namespace (named and labelled like a key Secret), or as a labelled Secret
/// the ring did not authenticate, is never loaded, published, made current or used by
/// `/v1/reencrypt`; the refusals are visible in the status, an event and a metric.
async fn injected_keys_are_never_loaded_published_or_used(server: Server) {
    let env = Env::start(server, &[]).await;
    let cluster_keys = env.recipients().await;
    assert_eq!(cluster_keys.len(), 1);
    let cluster_kid = cluster_keys[0].kid();
    let attacker = Identity::generate();
    let name = format!("kage-key-{}", attacker.kid());
    let file = kage_core::keys::format_identity_file(&attacker, jiff::Timestamp::now());

    // 1. An AgeSecret in kage-system, sealed to the cluster's own public key, decrypting to a
    //    key Secret with the key label: refused before anything is written.
    let mut ags = sealed_ags(
        "kage-system",
        &name,
        &[("key.txt", file.as_str())],
        &cluster_keys,
    );
    ags.spec
        .spec
        .template
        .metadata
        .labels
        .insert("kage.dev/key".into(), "active".into());
    let sys_ags: Api<AgeSecret> = Api::namespaced(env.admin.clone(), "kage-system");
    sys_ags.create(&PostParams::default(), &ags).await.unwrap();
    assert!(
        wait_reason(&sys_ags, &name, "False", "InvalidSpec").await,
        "log:\n{}",
        env.log()
    );
    // 2. The same label from a template anywhere else: refused too.
    env.namespace("shop").await;
    let mut shop = sealed_ags("shop", "db", &[("password", "pw")], &cluster_keys);
    shop.spec
        .spec
        .template
        .metadata
        .labels
        .insert("kage.dev/key".into(), "active".into());
    let shop_api: Api<AgeSecret> = Api::namespaced(env.admin.clone(), "shop");
    shop_api
        .create(&PostParams::default(), &shop)
        .await
        .unwrap();
    assert!(wait_reason(&shop_api, "db", "False", "InvalidSpec").await);

    // 3. A labelled Secret without the ring's authenticator (as anything but kage would write
    //    it), and one authenticated under another ring's key.
    let secrets: Api<Secret> = Api::namespaced(env.admin.clone(), "kage-system");
    let planted_id = Identity::generate();
    let planted_name = format!("kage-key-{}", planted_id.kid());
    let planted_file = kage_core::keys::format_identity_file(&planted_id, jiff::Timestamp::now());
    let mut planted: Secret = serde_json::from_value(json!({
        "metadata": {"name": planted_name, "labels": {"kage.dev/key": "active"}},
        "type": "Opaque",
    }))
    .unwrap();
    planted.data = Some(
        [(
            "key.txt".to_string(),
            ByteString(planted_file.as_bytes().to_vec()),
        )]
        .into(),
    );
    secrets
        .create(&PostParams::default(), &planted)
        .await
        .unwrap();
    let forged_id = Identity::generate();
    let forged_name = format!("kage-key-{}", forged_id.kid());
    let forged_file = kage_core::keys::format_identity_file(&forged_id, jiff::Timestamp::now());
    let other_ring = kage_core::keysecret::RingAuthKey::from_bytes(&[7; 32]).unwrap();
    let mut forged: Secret = serde_json::from_value(json!({
        "metadata": {
            "name": forged_name,
            "labels": {"kage.dev/key": "active"},
            "annotations": {"kage.dev/key-auth": other_ring.authenticate(
                "kage-system", &forged_name, std::slice::from_ref(&forged_id))},
        },
        "type": "Opaque",
    }))
    .unwrap();
    forged.data = Some(
        [(
            "key.txt".to_string(),
            ByteString(forged_file.as_bytes().to_vec()),
        )]
        .into(),
    );
    secrets
        .create(&PostParams::default(), &forged)
        .await
        .unwrap();

    // Reported: a metric and one event per refused Secret, naming it.
    let metrics_url = format!("http://{}/metrics", env.metrics);
    let reported = eventually(Duration::from_secs(15), || async {
        let m = http_get(&metrics_url)
            .await
            .map(|(_, m)| m)
            .unwrap_or_default();
        let ev = events_regarding(&env.admin, "UntrustedKeySecret").await;
        m.contains("kage_key_secrets_untrusted 2")
            && ev.contains(&planted_name)
            && ev.contains(&forged_name)
    })
    .await;
    assert!(reported, "refusals not reported; log:\n{}", env.log());

    // Never loaded, published or current.
    let (_, body) = http_get(&format!("http://{}/v1/keys", env.http))
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let kids: Vec<&str> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, vec![cluster_kid.as_str()], "{body}");
    assert_eq!(env.recipients().await, cluster_keys);
    let (_, m) = http_get(&metrics_url).await.unwrap();
    assert!(m.contains("kage_keys{status=\"active\"} 1"), "{m}");
    // An AgeSecret sealed to a planted key does not decrypt.
    let victim = sealed_ags("shop", "victim", &[("k", "v")], &[planted_id.recipient()]);
    shop_api
        .create(&PostParams::default(), &victim)
        .await
        .unwrap();
    assert!(wait_reason(&shop_api, "victim", "False", "UnknownKey").await);
    // /v1/reencrypt seals to the cluster's key alone.
    let good = sealed_ags("shop", "app", &[("token", "t0k3n")], &cluster_keys);
    let (code, body) = http_request(
        "POST",
        &format!("http://{}/v1/reencrypt", env.http),
        Some(&serde_json::to_string(&good).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let back: serde_json::Value = serde_json::from_str(&body).unwrap();
    let value = back["spec"]["encryptedData"]["token"].as_str().unwrap();
    assert!(
        value.starts_with(&format!("kage:v1:{cluster_kid}:")),
        "re-sealed to another key: {value}"
    );
    // The refused AgeSecret wrote no Secret, and no key material reached the log.
    assert!(secrets.get_opt(&name).await.unwrap().is_none());
    let log = env.log();
    assert!(!log.contains("AGE-SECRET-KEY"), "key material in the log");
}

async fn rotation_on_request_and_graceful_shutdown(server: Server) {
    let mut env = Env::start(server, &["--leader-elect"]).await;
    let first = env.recipients().await;
    assert_eq!(first.len(), 1);
    let cms: Api<ConfigMap> = Api::namespaced(env.admin.clone(), "kage-system");
    cms.patch(
        "kage-public-keys",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"kage.dev/rotate": "r1"}}})),
    )
    .await
    .unwrap();
    let rotated = eventually(Duration::from_secs(15), || async {
        env.recipients().await.len() == 2
    })
    .await;
    assert!(rotated, "no new key; log:\n{}", env.log());
    let now = env.recipients().await;
    assert_ne!(now[0], first[0], "newest first");
    assert_eq!(now[1], first[0]);
    // The request is answered once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.recipients().await.len(), 2);
    // The Lease is held, then released on SIGTERM.
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(env.admin.clone(), "kage-system");
    let lease = leases.get("kage-controller-leader").await.unwrap();
    assert!(lease.spec.unwrap().holder_identity.is_some());
    let status = env.stop().await;
    assert!(status.success(), "exit {status:?}; log:\n{}", env.log());
    let lease = leases.get("kage-controller-leader").await.unwrap();
    assert!(
        lease.spec.unwrap().holder_identity.is_none(),
        "Lease released"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_through_the_service_proxy_for_any_user() {
    // kage-testcluster only: its static user tokens and upstream routing (the real service proxy
    // is covered by `service_proxy` in this binary).
    let env = Env::start(Server::TestCluster, &[]).await;
    env.namespace("prod").await;
    let tc = env.cluster.test_cluster().expect("kage-testcluster");
    tc.register_upstream("kage-system", "kage-controller", &env.http);
    tc.add_user_token("alice-token", "alice", &[]);
    let alice = tc.client_for_token("alice-token");
    let to = env.recipients().await;
    let ags = sealed_ags("prod", "db", &[("password", "hunter2")], &to);
    let body = serde_json::to_vec(&ags).unwrap();
    let req = http::Request::post(
        "/api/v1/namespaces/kage-system/services/kage-controller:http/proxy/v1/verify",
    )
    .header("content-type", "application/json")
    .body(body)
    .unwrap();
    let text = alice
        .request_text(req)
        .await
        .expect("verify through the proxy");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["ok"], true, "{text}");
    assert!(!text.contains("hunter2"));
    // The ConfigMap is readable by anyone authenticated; Secrets are not.
    let cms: Api<ConfigMap> = Api::namespaced(alice.clone(), "kage-system");
    assert!(cms.get("kage-public-keys").await.is_ok());
    let secrets: Api<Secret> = Api::namespaced(alice, "kage-system");
    assert!(secrets.list(&Default::default()).await.is_err());
}

pub(crate) async fn lease_holder(admin: &Client) -> Option<String> {
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(admin.clone(), "kage-system");
    leases
        .get("kage-controller-leader")
        .await
        .ok()?
        .spec?
        .holder_identity
}

async fn standby_takes_over_when_the_leader_stops(server: Server) {
    let mut env = Env::start(server, &["--leader-elect"]).await;
    assert_eq!(
        lease_holder(&env.admin).await.as_deref(),
        Some("controller")
    );
    let (mut standby, standby_http) = env.replica("standby", &["--leader-elect"]);
    // The standby serves the API (keys included) without leading.
    let ready = eventually(Duration::from_secs(15), || async {
        http_get(&format!("http://{standby_http}/v1/keys"))
            .await
            .is_some_and(|(code, body)| code == 200 && body.contains("\"current\":true"))
    })
    .await;
    assert!(ready, "standby API not ready");
    assert_eq!(
        lease_holder(&env.admin).await.as_deref(),
        Some("controller")
    );
    // The leader stops: the standby takes over at once (the Lease was released) and reconciles.
    assert!(env.stop().await.success());
    let took_over = eventually(Duration::from_secs(10), || async {
        lease_holder(&env.admin).await.as_deref() == Some("standby")
    })
    .await;
    assert!(took_over, "standby did not take the Lease");
    env.namespace("prod").await;
    let to = env.recipients().await;
    assert_eq!(to.len(), 1, "no second key from the new leader");
    let ags_api: Api<AgeSecret> = Api::namespaced(env.admin.clone(), "prod");
    let ags = sealed_ags("prod", "db", &[("k", "v")], &to);
    ags_api.create(&PostParams::default(), &ags).await.unwrap();
    assert!(wait_reason(&ags_api, "db", "True", "Decrypted").await);
    assert!(stop_child(&mut standby).await.success());
}

async fn watch_namespaces_limits_the_scope(server: Server) {
    let env = Env::start(server, &["--watch-namespaces", "prod"]).await;
    env.namespace("prod").await;
    env.namespace("dev").await;
    let to = env.recipients().await;
    let prod: Api<AgeSecret> = Api::namespaced(env.admin.clone(), "prod");
    let dev: Api<AgeSecret> = Api::namespaced(env.admin.clone(), "dev");
    dev.create(
        &PostParams::default(),
        &sealed_ags("dev", "db", &[("k", "v")], &to),
    )
    .await
    .unwrap();
    prod.create(
        &PostParams::default(),
        &sealed_ags("prod", "db", &[("k", "v")], &to),
    )
    .await
    .unwrap();
    assert!(wait_reason(&prod, "db", "True", "Decrypted").await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        dev.get("db").await.unwrap().status.is_none(),
        "dev is not watched"
    );
}

/// A SOPS-form AgeSecret as `kage seal --sops` writes it (sorted keys, mac_only_encrypted).
fn sops_ags(ns: &str, name: &str, binding: Option<&str>, to: &[Recipient]) -> AgeSecret {
    use base64::Engine as _;
    use kage_core::document::Document;
    use kage_core::sops::{EncryptOptions, Selection};
    let mut spec = serde_json::Map::new();
    if let Some(b) = binding {
        spec.insert("binding".into(), b.into());
    }
    spec.insert(
        "data".into(),
        json!({"password": base64::engine::general_purpose::STANDARD.encode("hunter2")}),
    );
    spec.insert("scope".into(), "strict".into());
    spec.insert("stringData".into(), json!({"user": "admin"}));
    let doc = json!({"apiVersion": "kage.dev/v1alpha1", "kind": "AgeSecret", "spec": spec});
    let opts = EncryptOptions {
        key_groups: vec![to.to_vec()],
        shamir_threshold: 0,
        selection: Selection::EncryptedRegex("^(data|stringData|binding)$".into()),
        mac_only_encrypted: true,
    };
    let enc = kage_core::sops::encrypt(&[Document::from_json_value(&doc)], &opts).unwrap();
    let v = enc[0].to_json_value();
    let mut ags: AgeSecret = serde_json::from_value(json!({
        "apiVersion": "kage.dev/v1alpha1",
        "kind": "AgeSecret",
        "metadata": {"name": name, "namespace": ns},
        "spec": v["spec"],
        "sops": v["sops"],
    }))
    .unwrap();
    ags.metadata.namespace = Some(ns.into());
    ags
}

async fn sops_form_round_trips_through_the_cluster(server: Server) {
    let env = Env::start(server, &[]).await;
    env.namespace("prod").await;
    let to = env.recipients().await;
    let ags_api: Api<AgeSecret> = Api::namespaced(env.admin.clone(), "prod");
    let secrets: Api<Secret> = Api::namespaced(env.admin.clone(), "prod");
    let bound = sealed::binding_text(Scope::Strict, "prod", "db");
    ags_api
        .create(
            &PostParams::default(),
            &sops_ags("prod", "db", Some(&bound), &to),
        )
        .await
        .unwrap();
    assert!(
        wait_reason(&ags_api, "db", "True", "Decrypted").await,
        "log:\n{}",
        env.log()
    );
    let s = secrets.get("db").await.unwrap();
    assert_eq!(data_of(&s, "password").unwrap(), b"hunter2");
    assert_eq!(data_of(&s, "user").unwrap(), b"admin");
    // Without a binding: refused (no --allow-unbound-sops).
    ags_api
        .create(
            &PostParams::default(),
            &sops_ags("prod", "unbound", None, &to),
        )
        .await
        .unwrap();
    assert!(wait_reason(&ags_api, "unbound", "False", "InvalidSpec").await);
    // Bound elsewhere: ScopeMismatch.
    let elsewhere = sealed::binding_text(Scope::Strict, "prod", "other");
    ags_api
        .create(
            &PostParams::default(),
            &sops_ags("prod", "moved", Some(&elsewhere), &to),
        )
        .await
        .unwrap();
    assert!(wait_reason(&ags_api, "moved", "False", "ScopeMismatch").await);
    assert!(secrets.get_opt("unbound").await.unwrap().is_none());
    assert!(secrets.get_opt("moved").await.unwrap().is_none());
}

pub(crate) fn rss_kib(child: &Child) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Cold start: N AgeSecrets × 3 values exist before the controller starts; time until all are
/// Ready. N = `KAGE_COLD_START_N` (default 200 so the suite stays quick; the performance bar is
/// 3,000 in under 10 s with a release build). Prints the time and the controller's RSS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_many_agesecrets() {
    let n: usize = std::env::var("KAGE_COLD_START_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    // kage-testcluster only: a load measurement, kept off the real control plane so the suite
    // stays lean (bench/controller.sh measures both servers).
    // Start once to get the key, stop, create everything, start again (cold).
    let mut env = Env::start(Server::TestCluster, &[]).await;
    let to = env.recipients().await;
    assert!(env.stop().await.success());
    env.namespace("load").await;
    // Namespace scope: three sealed values serve every object of the namespace.
    let values: Vec<(String, String)> = ["a", "b", "c"]
        .iter()
        .map(|k| {
            let b = Binding::new(Scope::Namespace, "load", "", k);
            let v = format!("value-{k}-{}", "x".repeat(32));
            (k.to_string(), sealed::seal(v.as_bytes(), &b, &to).unwrap())
        })
        .collect();
    let api: Api<AgeSecret> = Api::namespaced(env.admin.clone(), "load");
    let mut created = 0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
        let futs = chunk.iter().map(|i| {
            let mut spec = AgeSecretSpec {
                scope: kage_core::api::v1alpha1::Scope::Namespace,
                ..AgeSecretSpec::default()
            };
            for (k, v) in &values {
                spec.encrypted_data.insert(k.clone(), v.clone());
            }
            let mut ags = AgeSecret::new(&format!("s{i}"), AgeSecretBody { spec, sops: None });
            ags.metadata.namespace = Some("load".into());
            let api = api.clone();
            async move { api.create(&PostParams::default(), &ags).await.map(|_| ()) }
        });
        for r in futures::future::join_all(futs).await {
            r.unwrap();
            created += 1;
        }
    }
    assert_eq!(created, n);
    let kc = env.dir.path().join("controller.kubeconfig");
    let start = Instant::now();
    let (mut child, _, metrics) = spawn_controller(
        &kc,
        env.dir.path(),
        "cold",
        "127.0.0.1",
        &["--concurrency", "16"],
    );
    // Poll the controller's own gauge (cheap) rather than listing every object.
    let metrics_url = format!("http://{metrics}/metrics");
    let want = format!("kage_agesecrets{{ready=\"True\"}} {n}\n");
    let mut all_ready = false;
    while start.elapsed() < Duration::from_secs(120) {
        if http_get(&metrics_url)
            .await
            .is_some_and(|(_, body)| body.contains(&want))
        {
            all_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = start.elapsed();
    let rss = rss_kib(&child);
    eprintln!(
        "cold start: {n} AgeSecrets x 3 values Ready in {:.2} s (controller RSS {} KiB)",
        elapsed.as_secs_f64(),
        rss.unwrap_or(0)
    );
    assert!(all_ready, "not all Ready after 120 s");
    // RSS stays flat when Secrets kage does not manage are added (KAGE_UNRELATED_SECRETS, default 0).
    let m: usize = std::env::var("KAGE_UNRELATED_SECRETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if m > 0 {
        env.namespace("other").await;
        let secrets: Api<Secret> = Api::namespaced(env.admin.clone(), "other");
        for chunk in (0..m).collect::<Vec<_>>().chunks(100) {
            let futs = chunk.iter().map(|i| {
                let s: Secret = serde_json::from_value(json!({
                    "metadata": {"name": format!("u{i}")},
                    "data": {"k": "dW5yZWxhdGVk"}
                }))
                .unwrap();
                let secrets = secrets.clone();
                async move { secrets.create(&PostParams::default(), &s).await.map(|_| ()) }
            });
            for r in futures::future::join_all(futs).await {
                r.unwrap();
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        eprintln!(
            "after {m} unrelated Secrets: controller RSS {} KiB",
            rss_kib(&child).unwrap_or(0)
        );
    }
    assert!(stop_child(&mut child).await.success());
}

/// Creates strict-scope AgeSecrets `s<i>` for `i` in `range` in `ns` (value `v-<i>` under key `k`).
async fn create_many(admin: &Client, ns: &str, range: std::ops::Range<usize>, to: &[Recipient]) {
    let api: Api<AgeSecret> = Api::namespaced(admin.clone(), ns);
    let futs = range.map(|i| {
        let ags = sealed_ags(ns, &format!("s{i}"), &[("k", &format!("v-{i}"))], to);
        let api = api.clone();
        async move { api.create(&PostParams::default(), &ags).await.map(|_| ()) }
    });
    for r in futures::future::join_all(futs).await {
        r.unwrap();
    }
}

/// Every `s<i>` is Ready and its Secret holds `v-<i>`.
async fn all_converged(admin: &Client, ns: &str, n: usize) -> bool {
    let api: Api<AgeSecret> = Api::namespaced(admin.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), ns);
    for i in 0..n {
        let name = format!("s{i}");
        if ready_condition(&api, &name).await != Some(("True".into(), "Decrypted".into())) {
            return false;
        }
        let want = format!("v-{i}");
        let ok = secrets
            .get_opt(&name)
            .await
            .ok()
            .flatten()
            .is_some_and(|s| data_of(&s, "k").as_deref() == Some(want.as_bytes()));
        if !ok {
            return false;
        }
    }
    true
}

/// The key Secrets in kage-system (name → `kage.dev/key` label).
async fn key_secrets(admin: &Client) -> Vec<(String, String)> {
    let api: Api<Secret> = Api::namespaced(admin.clone(), "kage-system");
    let list = api
        .list(&kube::api::ListParams::default().labels("kage.dev/key"))
        .await
        .unwrap();
    list.items
        .into_iter()
        .map(|s| {
            let label = s.metadata.labels.unwrap_or_default()["kage.dev/key"].clone();
            (s.metadata.name.unwrap_or_default(), label)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_through_api_faults() {
    use kage_testcluster::faults::Matcher;
    // kage-testcluster only: fault injection is a test-server feature.
    let mut env = Env::start(Server::TestCluster, &[]).await;
    let to = env.recipients().await;
    assert!(env.stop().await.success());
    env.namespace("prod").await;
    let n = 20;
    create_many(&env.admin, "prod", 0..n, &to).await;

    // Faults on everything the controller does, then a cold start into them.
    let faults = env
        .cluster
        .test_cluster()
        .expect("kage-testcluster")
        .faults();
    faults.add_latency(Matcher::prefix("/api"), Duration::from_millis(15));
    let secrets = "/api/v1/namespaces/prod/secrets";
    faults.fail_next(6, Matcher::prefix(secrets).method("GET"), 500, "injected");
    faults.fail_next(8, Matcher::prefix(secrets).method("PATCH"), 500, "injected");
    let agesecrets = "/apis/kage.dev/v1alpha1/namespaces/prod/agesecrets";
    faults.fail_next(
        6,
        Matcher::prefix(agesecrets).method("PATCH"),
        503,
        "injected",
    );
    faults.fail_next(
        3,
        Matcher::prefix(agesecrets).method("GET"),
        500,
        "injected",
    );
    faults.conflict_next_writes(6);
    env.launch(&[]).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        faults.drop_watches();
    }
    let converged = eventually(Duration::from_secs(60), || {
        all_converged(&env.admin, "prod", n)
    })
    .await;
    assert!(converged, "not converged; log:\n{}", env.log());
    let (_, m) = http_get(&format!("http://{}/metrics", env.metrics))
        .await
        .unwrap();
    let errors: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("kage_reconciles_total{result=\"error\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(errors > 0.0, "the injected faults were not hit:\n{m}");

    // Watches dropped again while a managed Secret is edited and another AgeSecret changes: both
    // are noticed after the re-watch.
    faults.clear();
    faults.drop_watches();
    let secrets_api: Api<Secret> = Api::namespaced(env.admin.clone(), "prod");
    secrets_api
        .patch(
            "s0",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "dGFtcGVyZWQ="}})),
        )
        .await
        .unwrap();
    faults.drop_watches();
    let ags_api: Api<AgeSecret> = Api::namespaced(env.admin.clone(), "prod");
    let changed = sealed_ags("prod", "s1", &[("k", "v-1-new")], &to);
    let mut current = ags_api.get("s1").await.unwrap();
    current.spec = changed.spec;
    ags_api
        .replace("s1", &PostParams::default(), &current)
        .await
        .unwrap();
    let restored = eventually(Duration::from_secs(30), || async {
        let s0 = secrets_api.get("s0").await.ok();
        let s1 = secrets_api.get("s1").await.ok();
        s0.is_some_and(|s| data_of(&s, "k").as_deref() == Some(&b"v-0"[..]))
            && s1.is_some_and(|s| data_of(&s, "k").as_deref() == Some(&b"v-1-new"[..]))
    })
    .await;
    assert!(
        restored,
        "changes missed after dropped watches; log:\n{}",
        env.log()
    );
    assert_eq!(
        key_secrets(&env.admin).await.len(),
        1,
        "one key, no duplicates"
    );
    assert!(!env.log().contains("v-1-new"), "plaintext in the log");
}

async fn killed_leader_is_replaced_and_restart_converges(server: Server) {
    let mut env = Env::start(server, &["--leader-elect"]).await;
    let (mut standby, _) = env.replica("standby", &["--leader-elect"]);
    env.namespace("prod").await;
    let to = env.recipients().await;
    let n = 30;
    // SIGKILL the leader while it reconciles: the Lease is not released, so the standby takes it
    // over once it expires (15 s), and finishes the work.
    create_many(&env.admin, "prod", 0..n, &to).await;
    env.kill();
    let took_over = eventually(Duration::from_secs(30), || async {
        lease_holder(&env.admin).await.as_deref() == Some("standby")
    })
    .await;
    assert!(took_over, "standby did not take the Lease over");
    let converged = eventually(Duration::from_secs(30), || {
        all_converged(&env.admin, "prod", n)
    })
    .await;
    let standby_log =
        std::fs::read_to_string(env.dir.path().join("standby.log")).unwrap_or_default();
    assert!(
        converged,
        "not converged after the takeover; standby log:\n{standby_log}"
    );

    // Kill the standby too, and restart the first replica: it waits out the Lease, converges on
    // an object created while nobody led, and generates no second key.
    standby.kill().unwrap();
    standby.wait().unwrap();
    create_many(&env.admin, "prod", n..n + 1, &to).await;
    env.launch(&["--leader-elect"]).await;
    let converged = eventually(Duration::from_secs(40), || {
        all_converged(&env.admin, "prod", n + 1)
    })
    .await;
    assert!(
        converged,
        "not converged after the restart; log:\n{}",
        env.log()
    );
    let keys = key_secrets(&env.admin).await;
    assert_eq!(keys.len(), 1, "duplicate keys: {keys:?}");
    assert_eq!(env.recipients().await, to);
    for log in [env.log(), standby_log] {
        assert!(!log.contains("v-1"), "plaintext in a log");
        assert!(!log.contains("AGE-SECRET-KEY"), "key material in a log");
    }
}
