//! The real kubectl against the `kage-testcluster` binary, and the same sessions against a real
//! kube-apiserver (the test binary's shared control plane, a namespace per test).

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// kubectl from `KAGE_TEST_KUBECTL`, else from PATH. Missing kubectl fails the test.
fn kubectl_path() -> PathBuf {
    if let Ok(p) = std::env::var("KAGE_TEST_KUBECTL") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("kubectl");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "kubectl not found: install kubectl (v1.32) on PATH or set KAGE_TEST_KUBECTL=/path/to/kubectl"
    );
}

struct Server {
    /// The kage-testcluster process; `None` on the real control plane.
    child: Option<Child>,
    url: String,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        let mut child = Command::new(env!("CARGO_BIN_EXE_kage-testcluster"))
            .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
            .arg(&kubeconfig)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kage-testcluster");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read URL");
        let url = line.trim().to_string();
        assert!(
            kubeconfig.exists(),
            "kubeconfig is written before the URL is printed"
        );
        Server {
            child: Some(child),
            url,
            dir,
            kubeconfig,
        }
    }

    /// The shared real control plane, with a kubeconfig whose context is a fresh namespace.
    fn real(namespace: &str) -> Server {
        let cp = kage_testcluster::ControlPlane::shared();
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        let admin = std::fs::read_to_string(cp.kubeconfig_path()).expect("kubeconfig");
        std::fs::write(
            &kubeconfig,
            admin.replace("namespace: default", &format!("namespace: {namespace}")),
        )
        .expect("write kubeconfig");
        let s = Server {
            child: None,
            url: cp.url().to_string(),
            dir,
            kubeconfig,
        };
        s.ok(&["create", "namespace", namespace]);
        s
    }

    /// kage-testcluster (`name` unused) or the real control plane in namespace `kubectl-<name>`.
    fn on(server: kage_testcluster::Server, name: &str) -> Server {
        match server {
            kage_testcluster::Server::TestCluster => Server::start(&[]),
            kage_testcluster::Server::Kubernetes => Server::real(&format!("kubectl-{name}")),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(kubectl_path());
        c.env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .args(args);
        c
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = self.cmd(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn kubectl");
        if let Some(input) = stdin
            && let Some(mut s) = child.stdin.take()
        {
            s.write_all(input.as_bytes()).expect("stdin");
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("kubectl output")
    }

    /// Run and require success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, None)
    }

    fn ok_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Run and require failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args, None);
        assert!(!out.status.success(), "kubectl {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, text).expect("write file");
        p
    }

    fn sigterm(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("a kage-testcluster process");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = child.try_wait().expect("wait") {
                return s;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Each session once per server: `<name>::test_cluster` and `<name>::kubernetes`.
macro_rules! on_both_servers {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn test_cluster() {
                super::$name(kage_testcluster::Server::TestCluster)
            }
            #[test]
            fn kubernetes() {
                super::$name(kage_testcluster::Server::Kubernetes)
            }
        }
    )*};
}

on_both_servers!(
    apply_client_side_twice_server_side_and_get_outputs,
    create_replace_conflict_delete,
    patch_variants_status_subresource_and_wait,
    get_watch_streams_changes,
    kustomize_render_and_apply,
    tokens_and_auth_can_i_as_service_account,
);

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

const MANIFESTS: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: app
  labels: {app: demo}
data:
  a: "1"
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
type: Opaque
data:
  password: aHVudGVyMg==
"#;

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

const WIDGET: &str = r#"apiVersion: example.com/v1
kind: Widget
metadata: {name: w1}
spec: {size: 1}
"#;

#[test]
fn binary_serves_https_writes_kubeconfig_and_stops_on_sigterm() {
    let mut s = Server::start(&[]);
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    let kc = std::fs::read_to_string(&s.kubeconfig).expect("kubeconfig");
    assert!(kc.contains("certificate-authority-data:"));
    assert!(kc.contains("current-context: kage-testcluster"));
    assert!(kc.contains("token: "));
    let ns = s.ok(&["get", "namespaces", "-o", "name"]);
    for want in [
        "namespace/default",
        "namespace/kube-system",
        "namespace/kube-public",
    ] {
        assert!(ns.contains(want), "{ns}");
    }
    let version = s.ok(&["version", "-o", "json"]);
    assert!(version.contains("\"serverVersion\""), "{version}");
    let status = s.sigterm();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}

#[test]
fn plain_http_mode() {
    let s = Server::start(&["--http"]);
    assert!(s.url.starts_with("http://127.0.0.1:"), "{}", s.url);
    let kc = std::fs::read_to_string(&s.kubeconfig).expect("kubeconfig");
    assert!(!kc.contains("certificate-authority-data"));
    s.ok(&["get", "secrets"]);
}

fn apply_client_side_twice_server_side_and_get_outputs(server: kage_testcluster::Server) {
    let s = Server::on(server, "apply");
    let f = s.write("m.yaml", MANIFESTS);
    let first = s.ok(&["apply", "-f", p(&f)]);
    assert!(
        first.contains("configmap/app created") && first.contains("secret/creds created"),
        "{first}"
    );
    let second = s.ok(&["apply", "-f", p(&f)]);
    assert!(
        second.contains("configmap/app unchanged") && second.contains("secret/creds unchanged"),
        "{second}"
    );
    let ssa = s.ok(&["apply", "--server-side", "-f", p(&f)]);
    assert!(ssa.contains("configmap/app serverside-applied"), "{ssa}");
    let changed = s.write("m2.yaml", &MANIFESTS.replace("a: \"1\"", "a: \"2\""));
    let third = s.ok(&["apply", "-f", p(&changed)]);
    assert!(third.contains("configmap/app configured"), "{third}");

    let yaml = s.ok(&["get", "cm", "app", "-o", "yaml"]);
    assert!(
        yaml.contains("a: \"2\"")
            && yaml.contains("kubectl.kubernetes.io/last-applied-configuration"),
        "{yaml}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["get", "secret", "creds", "-o", "json"])).expect("json");
    assert_eq!(json["data"]["password"], "aHVudGVyMg==");
    assert_eq!(
        s.ok(&["get", "cm", "app", "-o", "jsonpath={.metadata.labels.app}"]),
        "demo"
    );
    let table = s.ok(&["get", "secrets"]);
    assert!(
        table.contains("NAME") && table.contains("creds") && table.contains("Opaque"),
        "{table}"
    );
    let list = s.ok(&["get", "cm", "-l", "app=demo", "-o", "name"]);
    assert_eq!(list.trim(), "configmap/app");
    let managers = s.ok(&[
        "get",
        "cm",
        "app",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
        "--show-managed-fields",
    ]);
    assert!(managers.contains("kubectl"), "{managers}");
}

fn create_replace_conflict_delete(server: kage_testcluster::Server) {
    let s = Server::on(server, "create");
    assert!(
        s.ok(&[
            "create",
            "secret",
            "generic",
            "db",
            "--from-literal=user=admin",
            "--from-literal=pw=s3cr3t"
        ])
        .contains("secret/db created")
    );
    assert_eq!(
        s.ok(&["get", "secret", "db", "-o", "jsonpath={.data.user}"]),
        "YWRtaW4="
    );
    s.ok(&["create", "configmap", "settings", "--from-literal=k=v"]);
    s.ok(&["create", "namespace", "team"]);
    let described = s.ok(&["describe", "namespace", "team"]);
    assert!(described.contains("Status:       Active"), "{described}");
    let described = s.ok(&["describe", "secret", "db"]);
    assert!(described.contains("user:  5 bytes"), "{described}");
    s.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    assert_eq!(
        s.ok(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.ports[0].targetPort}"
        ]),
        "8080"
    );
    s.ok(&["create", "-n", "team", "serviceaccount", "bot"]);
    let f = s.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: made\ndata:\n  x: hello\n",
    );
    s.ok(&["create", "-f", p(&f)]);
    let err = s.fails(&["create", "-f", p(&f)]);
    assert!(
        err.contains("AlreadyExists") || err.contains("already exists"),
        "{err}"
    );

    let stale = s.ok(&["get", "cm", "settings", "-o", "yaml"]);
    let stale_file = s.write("stale.yaml", &stale);
    s.ok(&[
        "patch",
        "cm",
        "settings",
        "-p",
        r#"{"data":{"k":"changed"}}"#,
    ]);
    let err = s.fails(&["replace", "-f", p(&stale_file)]);
    assert!(err.contains("the object has been modified"), "{err}");
    let bad = s.fails(&[
        "create",
        "secret",
        "tls",
        "broken",
        "--cert=/dev/null",
        "--key=/dev/null",
    ]);
    assert!(!bad.is_empty());
    assert!(
        s.ok(&["delete", "secret", "db"])
            .contains("secret \"db\" deleted")
    );
    let err = s.fails(&["get", "secret", "db"]);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
}

fn patch_variants_status_subresource_and_wait(server: kage_testcluster::Server) {
    let s = Server::on(server, "patch");
    s.ok(&["create", "configmap", "cfg", "--from-literal=a=1"]);
    s.ok(&["patch", "cm", "cfg", "-p", r#"{"data":{"b":"2"}}"#]);
    s.ok(&[
        "patch",
        "cm",
        "cfg",
        "--type=merge",
        "-p",
        r#"{"data":{"c":"3"}}"#,
    ]);
    s.ok(&[
        "patch",
        "cm",
        "cfg",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/data/a"},{"op":"test","path":"/data/b","value":"2"}]"#,
    ]);
    let data = s.ok(&["get", "cm", "cfg", "-o", "jsonpath={.data}"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&data).expect("json"),
        serde_json::json!({"b": "2", "c": "3"})
    );
    let err = s.fails(&[
        "patch",
        "cm",
        "cfg",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/data/b","value":"nope"}]"#,
    ]);
    assert!(!err.is_empty());

    let crd = s.write("crd.yaml", CRD);
    s.ok(&["apply", "-f", p(&crd)]);
    s.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=10s",
    ]);
    let w = s.write("w.yaml", WIDGET);
    s.ok(&["apply", "-f", p(&w)]);
    assert!(s.ok(&["apply", "-f", p(&w)]).contains("unchanged"));
    assert!(s.ok(&["get", "wd"]).contains("w1"));
    let waiter = s
        .cmd(&[
            "wait",
            "--for=condition=Ready",
            "widget/w1",
            "--timeout=20s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wait");
    std::thread::sleep(Duration::from_millis(700));
    s.ok(&["patch", "widget", "w1", "--subresource=status", "--type=merge", "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Done","message":"ok"}]}}"#]);
    let out = waiter.wait_with_output().expect("wait output");
    assert!(
        out.status.success(),
        "kubectl wait: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("condition met"));
    let table = s.ok(&["get", "widgets"]);
    assert!(table.contains("READY") && table.contains("True"), "{table}");
    // Status patches leave the generation alone; spec patches bump it.
    assert_eq!(
        s.ok(&[
            "get",
            "widget",
            "w1",
            "-o",
            "jsonpath={.metadata.generation}"
        ]),
        "1"
    );
    s.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":2}}"#,
    ]);
    assert_eq!(
        s.ok(&[
            "get",
            "widget",
            "w1",
            "-o",
            "jsonpath={.metadata.generation}"
        ]),
        "2"
    );
    assert!(s.ok(&["delete", "-f", p(&w)]).contains("deleted"));
}

fn get_watch_streams_changes(server: kage_testcluster::Server) {
    let s = Server::on(server, "watch");
    s.ok(&["create", "configmap", "before", "--from-literal=a=1"]);
    let mut watch = s
        .cmd(&["get", "configmaps", "--watch", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("watch");
    let stdout = watch.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // kube-controller-manager publishes the cluster CA into every namespace.
            if line == "configmap/kube-root-ca.crt" {
                continue;
            }
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("initial list line");
    assert_eq!(first, "configmap/before");
    s.ok(&["create", "configmap", "during", "--from-literal=a=1"]);
    let next = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("watch event line");
    assert_eq!(next, "configmap/during");
    let _ = watch.kill();
    let _ = watch.wait();
}

fn kustomize_render_and_apply(server: kage_testcluster::Server) {
    let s = Server::on(server, "kustomize");
    // Namespace `store`: deploy.rs applies into `shop` on the same shared control plane.
    s.write("k/kustomization.yaml", "namespace: store\nresources: [ns.yaml, cm.yaml]\nconfigMapGenerator:\n- name: generated\n  literals: [k=v]\ncommonLabels:\n  app.kubernetes.io/part-of: store\n");
    s.write(
        "k/ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: store\n",
    );
    s.write(
        "k/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\ndata:\n  a: b\n",
    );
    let dir = s.dir.path().join("k");
    let rendered = s.ok(&["kustomize", p(&dir)]);
    let applied = s.ok_with(&["apply", "-f", "-"], Some(&rendered));
    assert!(
        applied.contains("namespace/store created") && applied.contains("configmap/plain created"),
        "{applied}"
    );
    let again = s.ok_with(&["apply", "-f", "-"], Some(&rendered));
    assert!(again.contains("configmap/plain unchanged"), "{again}");
    let names = s.ok(&[
        "get",
        "cm",
        "-n",
        "store",
        "-l",
        "app.kubernetes.io/part-of=store",
        "-o",
        "name",
    ]);
    assert!(
        names.contains("configmap/plain") && names.contains("configmap/generated-"),
        "{names}"
    );
    s.ok(&[
        "delete",
        "namespace",
        "store",
        "--wait=true",
        "--timeout=20s",
    ]);
    let err = s.fails(&["get", "namespace", "store"]);
    assert!(err.contains("not found"), "{err}");
}

fn tokens_and_auth_can_i_as_service_account(server: kage_testcluster::Server) {
    let s = Server::on(server, "auth");
    // Not kage's own names: on the shared control plane deploy.rs installs kage-system, whose
    // ServiceAccount is granted far more.
    s.ok(&["create", "namespace", "robots"]);
    s.ok(&["create", "serviceaccount", "-n", "robots", "bot"]);
    let token = s.ok(&["create", "token", "-n", "robots", "bot"]);
    let token = token.trim();
    assert!(!token.is_empty());
    let sa = "system:serviceaccount:robots:bot";
    // `auth can-i` exits 1 for "no".
    let no = |args: &[&str]| {
        let out = s.run(args, None);
        assert!(
            !out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "no",
            "{args:?}"
        );
    };
    no(&["auth", "can-i", "get", "secrets", "--as", sa]);
    s.ok(&[
        "create",
        "role",
        "secret-reader",
        "--verb=get,list",
        "--resource=secrets",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "secret-reader",
        "--role=secret-reader",
        "--serviceaccount=robots:bot",
    ]);
    assert_eq!(
        s.ok(&["auth", "can-i", "get", "secrets", "--as", sa])
            .trim(),
        "yes"
    );
    no(&["auth", "can-i", "delete", "secrets", "--as", sa]);
    let list = s.ok(&["auth", "can-i", "--list", "--as", sa]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("secrets ") && l.contains("[get list]")),
        "{list}"
    );
    let whoami = s.ok(&["auth", "whoami", "--as", sa]);
    assert!(
        whoami.contains(sa) && whoami.contains("system:serviceaccounts:robots"),
        "{whoami}"
    );
    // With the token itself.
    // On the real control plane the kubeconfig's client certificate (system:masters) would win
    // over `--token`: the token gets a kubeconfig of its own there.
    let tok = match &s.child {
        Some(_) => format!("--token={token}"),
        None => {
            let admin = std::fs::read_to_string(&s.kubeconfig).expect("kubeconfig");
            let server = admin
                .lines()
                .find_map(|l| l.trim().strip_prefix("server: "))
                .expect("server");
            let ca = admin
                .lines()
                .find_map(|l| l.trim().strip_prefix("certificate-authority: "))
                .expect("CA file");
            let text = format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: {server}, certificate-authority: {ca}}}\nusers:\n- name: u\n  user: {{token: {token}}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u, namespace: kubectl-auth}}\ncurrent-context: c\n"
            );
            format!("--kubeconfig={}", p(&s.write("token.kubeconfig", &text)))
        }
    };
    assert_eq!(
        s.ok(&["auth", "can-i", "list", "secrets", &tok]).trim(),
        "yes"
    );
    no(&[
        "auth",
        "can-i",
        "list",
        "secrets",
        "-n",
        "kube-system",
        &tok,
    ]);
    s.ok(&["get", "secrets", &tok]);
    let err = s.fails(&["get", "secrets", "-n", "kube-system", &tok]);
    assert!(
        err.contains(r#"secrets is forbidden: User "system:serviceaccount:robots:bot" cannot list resource "secrets" in API group "" in the namespace "kube-system""#),
        "{err}"
    );
}
