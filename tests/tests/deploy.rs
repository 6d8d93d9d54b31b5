//! deploy/, examples/ and the docs, checked with the real tools: the Argo CD health check run
//! by Debian's Lua interpreter on sample AgeSecrets; every kustomize overlay rendered by
//! `kubectl kustomize` and applied to the `kage-testcluster` binary; the commands shown in the
//! README and docs exist (`kage … --help`); and `scripts/demo.sh` (the examples/gitops flow
//! against two test clusters) run to its end.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

/// A tool from `$VAR`, else from the PATH; missing fails the test with a hint (never skips).
fn tool(var: &str, name: &str, hint: &str) -> PathBuf {
    if let Ok(p) = std::env::var(var) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("{name} not found: {hint} (or set {var}=/path/to/{name})");
}

fn kubectl() -> PathBuf {
    tool(
        "KAGE_TEST_KUBECTL",
        "kubectl",
        "install kubectl (v1.32) on the PATH",
    )
}

fn lua() -> PathBuf {
    tool(
        "KAGE_TEST_LUA",
        "lua5.4",
        "run `source scripts/tools.sh` (installs Debian's lua5.4)",
    )
}

fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().expect("wait")
}

fn yaml_docs(text: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(text).expect("YAML parses");
    docs.into_iter().filter(|v| !v.is_null()).collect()
}

/// The workspace binaries the tests run, from the same target directory as this test, built
/// with cargo when they are missing (so `cargo test -p kage-testcluster` alone works too).
fn workspace_bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/testcluster-<hash>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory")
        .to_path_buf();
    let wanted = ["kage", "kage-controller", "kage-testcluster"];
    if wanted.iter().any(|b| !dir.join(b).is_file())
        || std::env::var_os("KAGE_TEST_REBUILD").is_some()
    {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(repo())
            .args(["build", "-j2", "-p", "kage", "-p", "kage-controller"])
            .args(["-p", "kage-testcluster"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo build");
        assert!(
            status.success(),
            "cargo build of the workspace binaries failed"
        );
    }
    dir
}

// ---------------------------------------------------------------------------------------------
// Argo CD health check

/// A Lua table constructor for a JSON value (`null`s become absent fields, as in Argo CD).
fn lua_literal(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(lua_literal).collect();
            format!("{{{}}}", parts.join(", "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_literal(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            other => out.push_str(&format!("\\{other:03}")),
        }
    }
    out.push('"');
    out
}

/// Runs deploy/argocd/health.lua as Argo CD does (the object in the global `obj`, the result
/// the chunk's return value) and returns (status, message).
fn argocd_health(script: &Path, obj: &Value) -> (String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let harness = dir.path().join("harness.lua");
    let body = format!(
        "obj = {}\nlocal check = assert(loadfile({}))\nlocal hs = check()\nio.write(hs.status, \"\\n\", hs.message or \"\")\n",
        lua_literal(obj),
        lua_string(&script.display().to_string()),
    );
    std::fs::write(&harness, body).expect("write harness");
    let out = run(Command::new(lua()).arg(&harness), None);
    assert!(
        out.status.success(),
        "lua failed on {obj}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let (status, message) = text.split_once('\n').unwrap_or((&text, ""));
    (status.to_string(), message.to_string())
}

#[test]
fn argocd_health_check_on_samples() {
    let dir = repo().join("deploy/argocd");
    let script = dir.join("health.lua");
    let cases = &yaml_docs(&std::fs::read_to_string(dir.join("health_test.yaml")).unwrap())[0];
    let cases = cases["tests"].as_array().expect("tests list");
    assert!(cases.len() >= 8, "too few samples");
    let mut seen = BTreeSet::new();
    for case in cases {
        let input = case["inputPath"].as_str().unwrap();
        let obj = &yaml_docs(&std::fs::read_to_string(dir.join(input)).unwrap())[0];
        let want = &case["healthStatus"];
        let (status, message) = argocd_health(&script, obj);
        assert_eq!(
            status,
            want["status"].as_str().unwrap(),
            "{input}: {message}"
        );
        assert_eq!(message, want["message"].as_str().unwrap(), "{input}");
        seen.insert(status);
    }
    for s in ["Healthy", "Degraded", "Progressing", "Suspended"] {
        assert!(seen.contains(s), "no sample is {s}");
    }
    // Every sample file is listed.
    let listed: BTreeSet<&str> = cases
        .iter()
        .map(|c| c["inputPath"].as_str().unwrap())
        .collect();
    for entry in std::fs::read_dir(dir.join("testdata")).unwrap() {
        let name = format!("testdata/{}", entry.unwrap().file_name().to_string_lossy());
        assert!(
            listed.contains(name.as_str()),
            "{name} is not in health_test.yaml"
        );
    }
}

#[test]
fn argocd_health_check_on_odd_objects() {
    let script = repo().join("deploy/argocd/health.lua");
    // No metadata.generation at all, an Unknown condition, a condition list without Ready.
    let cases = [
        (
            serde_json::json!({"spec": {}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            "Healthy",
        ),
        (
            serde_json::json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "Unknown", "reason": "Reconciling"}]}}),
            "Progressing",
        ),
        (
            serde_json::json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": [{"type": "Synced", "status": "True"}]}}),
            "Progressing",
        ),
        (
            serde_json::json!({"metadata": {"generation": 2}, "spec": {"suspend": false}, "status": {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "False", "reason": "DecryptFailed"}]}}),
            "Degraded",
        ),
    ];
    for (obj, want) in cases {
        let (status, message) = argocd_health(&script, &obj);
        assert_eq!(status, want, "{obj}: {message}");
        assert!(!message.is_empty(), "{obj}: empty message");
    }
}

#[test]
fn argocd_cm_patch_embeds_the_script_verbatim() {
    let dir = repo().join("deploy/argocd");
    let script = std::fs::read_to_string(dir.join("health.lua")).unwrap();
    let cm = &yaml_docs(&std::fs::read_to_string(dir.join("argocd-cm.yaml")).unwrap())[0];
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "argocd-cm");
    assert_eq!(
        cm["data"]["resource.customizations.health.kage.dev_AgeSecret"]
            .as_str()
            .unwrap(),
        script,
        "deploy/argocd/argocd-cm.yaml is stale: re-embed health.lua (indent by 4 spaces)"
    );
}

// ---------------------------------------------------------------------------------------------
// kustomize overlays rendered and applied

/// The `kage-testcluster` binary, with its admin kubeconfig.
struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Server {
    fn start(bin_dir: &Path) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        let mut child = Command::new(bin_dir.join("kage-testcluster"))
            .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
            .arg(&kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kage-testcluster");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read URL");
        assert!(line.starts_with("https://"), "no URL: {line:?}");
        Server {
            child,
            _dir: dir,
            kubeconfig,
        }
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(kubectl());
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        run(&mut cmd, stdin)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kustomize(dir: &Path) -> String {
    let out = run(Command::new(kubectl()).arg("kustomize").arg(dir), None);
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Every directory with a kustomization.yaml under `dir` that is not a Component.
fn kustomizations(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let k = d.join("kustomization.yaml");
        if k.is_file()
            && !std::fs::read_to_string(&k)
                .unwrap()
                .contains("kind: Component")
        {
            found.push(d.clone());
        }
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    found.sort();
    found
}

fn kinds(rendered: &str) -> Vec<(String, String)> {
    yaml_docs(rendered)
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap_or_default().to_string(),
                d["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn every_overlay_renders_and_applies_to_the_test_server() {
    let root = repo();
    let deploy = kustomizations(&root.join("deploy"));
    let names: Vec<String> = deploy
        .iter()
        .map(|d| d.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    for want in [
        "deploy/base",
        "deploy/crds",
        "deploy/overlays/ha",
        "deploy/overlays/single-namespace",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    let bins = workspace_bin_dir();
    for dir in &deploy {
        let rendered = kustomize(dir);
        let objects = kinds(&rendered);
        assert!(!objects.is_empty(), "{} renders nothing", dir.display());
        if dir.ends_with("deploy/crds") {
            continue;
        }
        // Security settings every install keeps.
        let docs = yaml_docs(&rendered);
        let dep = docs
            .iter()
            .find(|d| d["kind"] == "Deployment")
            .unwrap_or_else(|| panic!("{}: no Deployment", dir.display()));
        let pod = &dep["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(
            pod["securityContext"]["runAsNonRoot"],
            true,
            "{}",
            dir.display()
        );
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert!(c["resources"]["requests"].is_object() && c["resources"]["limits"].is_object());
        assert!(dep["spec"]["replicas"].as_i64().unwrap() >= 2);
        check_network_policy(&docs, dep, dir);

        // Applied to a fresh test server (the namespace the single-namespace overlay binds in
        // first), and everything rendered is then there.
        let server = Server::start(&bins);
        let out = server.kubectl(&["create", "namespace", "shop"], None);
        assert!(out.status.success());
        let out = server.kubectl(&["apply", "-f", "-"], Some(rendered.as_bytes()));
        assert!(
            out.status.success(),
            "kubectl apply of {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let versions = stored_versions(&server, &docs, &objects, dir);
        // Applying again changes nothing: no object gets a new resourceVersion (the test server
        // does not bump it for writes that change nothing, like the real one).
        let out = server.kubectl(&["apply", "-f", "-"], Some(rendered.as_bytes()));
        assert!(out.status.success());
        assert_eq!(
            stored_versions(&server, &docs, &objects, dir),
            versions,
            "{}: the second apply changed something",
            dir.display()
        );
    }
}

/// The NetworkPolicy of deploy/base, in every install: the HTTP API open to the API server's
/// service proxy (no `from`: the control plane has no pod or namespace to select), metrics only
/// from `monitoring`, egress only to DNS and the API server, on the Deployment's own ports.
fn check_network_policy(docs: &[Value], dep: &Value, dir: &Path) {
    let policies: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "NetworkPolicy")
        .collect();
    let [np] = policies.as_slice() else {
        panic!(
            "{}: expected one NetworkPolicy, found {}",
            dir.display(),
            policies.len()
        );
    };
    assert_eq!(
        np["metadata"]["namespace"],
        "kage-system",
        "{}",
        dir.display()
    );
    let pod_labels = &dep["spec"]["template"]["metadata"]["labels"];
    for (k, v) in np["spec"]["podSelector"]["matchLabels"]
        .as_object()
        .expect("podSelector.matchLabels")
    {
        assert_eq!(&pod_labels[k], v, "{}: podSelector {k}", dir.display());
    }
    let types: BTreeSet<&str> = np["spec"]["policyTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        BTreeSet::from(["Ingress", "Egress"]),
        "{}",
        dir.display()
    );
    let container_port = |name: &str| {
        dep["spec"]["template"]["spec"]["containers"][0]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["containerPort"].as_i64())
            .unwrap_or_else(|| panic!("{}: no container port {name}", dir.display()))
    };
    let ports = |rule: &Value| -> BTreeSet<(String, i64)> {
        rule["ports"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        (
                            p["protocol"].as_str().unwrap_or("TCP").to_string(),
                            p["port"].as_i64().expect("numeric port"),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let ingress = np["spec"]["ingress"].as_array().expect("ingress rules");
    let http = ("TCP".to_string(), container_port("http"));
    let metrics = ("TCP".to_string(), container_port("metrics"));
    assert!(
        ingress
            .iter()
            .any(|r| r["from"].is_null() && ports(r) == BTreeSet::from([http.clone()])),
        "{}: the HTTP API port is not open to the service proxy",
        dir.display()
    );
    let metrics_rule = ingress
        .iter()
        .find(|r| ports(r).contains(&metrics))
        .unwrap_or_else(|| panic!("{}: no ingress rule for metrics", dir.display()));
    assert_eq!(
        metrics_rule["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring",
        "{}: metrics open to more than `monitoring`",
        dir.display()
    );
    for r in ingress {
        if !r["from"].is_null() {
            continue;
        }
        assert_eq!(
            ports(r),
            BTreeSet::from([http.clone()]),
            "{}: an ingress rule open to everyone on more than the HTTP API",
            dir.display()
        );
    }
    let egress: BTreeSet<(String, i64)> = np["spec"]["egress"]
        .as_array()
        .expect("egress rules")
        .iter()
        .flat_map(ports)
        .collect();
    let want: BTreeSet<(String, i64)> = [("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 6443)]
        .into_iter()
        .map(|(p, n)| (p.to_string(), n))
        .collect();
    assert_eq!(
        egress,
        want,
        "{}: egress beyond DNS and the API server",
        dir.display()
    );
}

/// The resourceVersion of every rendered object as stored (each must exist).
fn stored_versions(
    server: &Server,
    docs: &[Value],
    objects: &[(String, String)],
    dir: &Path,
) -> Vec<String> {
    let mut versions = Vec::new();
    for (kind, name) in objects {
        let ns = docs
            .iter()
            .find(|d| d["kind"] == kind.as_str() && d["metadata"]["name"] == name.as_str())
            .and_then(|d| d["metadata"]["namespace"].as_str())
            .map(str::to_string);
        let mut args = vec![
            "get".to_string(),
            kind.to_lowercase(),
            name.clone(),
            "-o".to_string(),
            "jsonpath={.metadata.resourceVersion}".to_string(),
        ];
        if let Some(ns) = ns {
            args.extend(["-n".to_string(), ns]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = server.kubectl(&args, None);
        assert!(
            out.status.success(),
            "{}: {kind} {name} not stored: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        versions.push(String::from_utf8_lossy(&out.stdout).to_string());
    }
    versions
}

#[test]
fn single_namespace_overlay_grants_nothing_cluster_wide() {
    let rendered = kustomize(&repo().join("deploy/overlays/single-namespace"));
    let docs = yaml_docs(&rendered);
    assert!(
        !docs.iter().any(|d| d["kind"] == "ClusterRoleBinding"),
        "the single-namespace overlay must not bind anything cluster-wide"
    );
    let bound: BTreeSet<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "RoleBinding" && d["roleRef"]["name"] == "kage-controller")
        .map(|d| d["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(bound, BTreeSet::from(["kage-system", "shop"]));
    let dep = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let args = dep["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--watch-namespaces=shop"), "{args}");
}

#[test]
fn examples_gitops_overlays_render_and_apply() {
    let root = repo();
    let gitops = root.join("examples/gitops");
    let bins = workspace_bin_dir();
    let server = Server::start(&bins);
    let crd = kustomize(&root.join("deploy/crds"));
    let out = server.kubectl(&["apply", "-f", "-"], Some(crd.as_bytes()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for env in ["staging", "prod"] {
        let rendered = kustomize(&gitops.join("overlays").join(env));
        let objects = kinds(&rendered);
        for want in [
            ("AgeSecret", "db"),
            ("AgeSecret", "api-token"),
            ("Deployment", "web"),
        ] {
            assert!(
                objects.contains(&(want.0.to_string(), want.1.to_string())),
                "{env}: {want:?} not rendered"
            );
        }
        assert!(
            !rendered.contains("kind: Secret\n"),
            "{env}: a plain Secret in the overlay"
        );
        let out = server.kubectl(&["apply", "-f", "-"], Some(rendered.as_bytes()));
        assert!(
            out.status.success(),
            "{env}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The committed files check offline against .kage.yaml (kage validate).
    let mut files = Vec::new();
    for env in ["staging", "prod"] {
        for name in ["db", "api-token"] {
            files.push(format!("overlays/{env}/secrets/{name}.yaml"));
        }
    }
    files.push("flux/prod/smtp.enc.yaml".into());
    let out = run(
        Command::new(bins.join("kage"))
            .current_dir(&gitops)
            .arg("validate")
            .args(&files),
        None,
    );
    assert!(
        out.status.success(),
        "kage validate: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // `.sops.yaml` is what `kage sops-config` writes from `.kage.yaml`.
    let out = run(
        Command::new(bins.join("kage"))
            .current_dir(&gitops)
            .args(["sops-config", "--check"]),
        None,
    );
    assert!(
        out.status.success(),
        "examples/gitops/.sops.yaml is stale: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No private key is committed under examples/.
    for entry in walk(&gitops) {
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        assert!(
            !text.contains("AGE-SECRET-KEY-1"),
            "{} contains a private key",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn flux_examples_parse() {
    let dir = repo().join("deploy/flux");
    for (file, kinds_wanted) in [
        (
            "agesecrets-kustomization.yaml",
            &["GitRepository", "Kustomization"][..],
        ),
        ("sops-kustomization.yaml", &["Kustomization"][..]),
    ] {
        let docs = yaml_docs(&std::fs::read_to_string(dir.join(file)).unwrap());
        for k in kinds_wanted {
            assert!(docs.iter().any(|d| d["kind"] == *k), "{file}: no {k}");
        }
        for d in &docs {
            if d["kind"] == "Kustomization" {
                assert_eq!(d["apiVersion"], "kustomize.toolkit.fluxcd.io/v1", "{file}");
                let path = d["spec"]["path"].as_str().unwrap();
                assert!(path.starts_with("./"), "{file}: {path}");
            }
        }
    }
    let sops = yaml_docs(&std::fs::read_to_string(dir.join("sops-kustomization.yaml")).unwrap());
    assert_eq!(sops[0]["spec"]["decryption"]["provider"], "sops");
}

// ---------------------------------------------------------------------------------------------
// Commands shown in the docs exist

/// The subcommand words of a `kage …` command line: the words after `kage` up to the first
/// flag or argument (a word that is not lowercase letters and dashes).
fn command_words(segment: &str) -> Option<Vec<String>> {
    let rest = segment.trim().strip_prefix("kage ")?;
    let words: Vec<String> = rest
        .split_whitespace()
        .take_while(|w| {
            !w.starts_with('-') && w.chars().all(|c| c.is_ascii_lowercase() || c == '-')
        })
        .map(str::to_string)
        .collect();
    (!words.is_empty()).then_some(words)
}

/// Commands in a piece of shell: at the start, and after `|`, `&&`, `;`, `(` and `$(`.
fn shell_commands(code: &str, out: &mut BTreeSet<Vec<String>>) {
    let code = code.trim_start().trim_start_matches("$ ");
    for segment in code.split(['|', ';', '(']).flat_map(|s| s.split("&&")) {
        if let Some(words) = command_words(segment) {
            out.insert(words);
        }
    }
}

/// `kage …` commands in the README and docs: in fenced code blocks, and in inline code spans.
fn documented_kage_commands() -> BTreeSet<Vec<String>> {
    let root = repo();
    let mut files = vec![
        root.join("README.md"),
        root.join("examples/gitops/README.md"),
    ];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "md") {
            files.push(p);
        }
    }
    let mut commands = BTreeSet::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut in_block = false;
        for line in text.lines() {
            if line.trim_start().starts_with("```") {
                in_block = !in_block;
                continue;
            }
            if in_block {
                shell_commands(line, &mut commands);
            } else {
                // Inline code spans: the odd pieces between backticks.
                for (i, span) in line.split('`').enumerate() {
                    if i % 2 == 1 {
                        shell_commands(span, &mut commands);
                    }
                }
            }
        }
    }
    commands
}

#[test]
fn every_documented_kage_command_exists() {
    let kage = workspace_bin_dir().join("kage");
    let commands = documented_kage_commands();
    assert!(commands.len() >= 10, "too few commands found: {commands:?}");
    let mut checked = BTreeSet::new();
    for words in commands {
        // Walk down the subcommand tree: a word is a subcommand only where the parent's help
        // lists commands; after a leaf command the rest are arguments.
        let mut path: Vec<String> = Vec::new();
        for w in words {
            path.push(w);
            let out = run(Command::new(&kage).args(&path).arg("--help"), None);
            assert!(
                out.status.success(),
                "documented command `kage {}` does not exist: {}",
                path.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            checked.insert(path.join(" "));
            if !String::from_utf8_lossy(&out.stdout).contains("\nCommands:") {
                break;
            }
        }
    }
    for must in ["seal", "unseal", "keys list", "reencrypt", "validate"] {
        assert!(
            checked.contains(must),
            "`kage {must}` is not documented: {checked:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The demo: the examples/gitops flow against two test clusters

#[test]
fn demo_runs_the_gitops_flow_end_to_end() {
    let bins = workspace_bin_dir();
    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg(repo().join("scripts/demo.sh"))
        .env("KAGE_BIN_DIR", &bins)
        .env("KUBECTL", kubectl())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash scripts/demo.sh");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out_reader =
        std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err_reader =
        std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(240) {
            // SIGTERM lets the script's trap stop its clusters and controllers.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
            panic!(
                "scripts/demo.sh took more than 4 minutes:\n{}",
                out_reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = out_reader.join().unwrap();
    let err = err_reader.join().unwrap();
    assert!(
        status.success(),
        "scripts/demo.sh failed ({status}):\n{out}\n{err}"
    );
    for line in [
        "ok: staging API server at https://",
        "ok: kage-controller is ready and reachable through the service proxy",
        "staging  secret/db  password = staging-db-password",
        "prod  secret/db  password = prod-db-password",
        "ok: refused with UnknownKey, and staging's Secret was left exactly as it was",
        "ok: prod's AgeSecrets are sealed to the new kid",
        "ok: the break-glass key opens prod's re-encrypted manifest",
        "every step above was verified",
        // The kage cluster commands the demo shows (contexts from .kage.yaml's `cluster:`).
        "$ kage keys fetch --write-env staging",
        "$ kage keys fetch --write-env prod",
        "ok: staging seals to kid ",
        "$ kage validate --cluster --context staging overlays/prod/secrets/db.yaml",
        "exit code 3: staging has no key the prod manifest was sealed to (UnknownKey)",
        "$ kage keys rotate --context prod",
        "$ kage reencrypt overlays/prod/secrets/",
        "re-encrypted by the controller",
        "$ kage keys usage --context prod",
        "ok: nothing in prod uses the old key",
    ] {
        assert!(out.contains(line), "demo output lacks {line:?}:\n{out}");
    }
    // `kage validate --cluster` prints `FAILED: UnknownKey` for the refused manifest; the demo's
    // own failure message is `FAILED at step N`.
    assert!(
        !out.contains("FAILED at step") && !err.contains("FAILED at step"),
        "{out}\n{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Links between the docs

#[test]
fn relative_links_in_the_docs_resolve() {
    let root = repo();
    let mut files = vec![
        root.join("README.md"),
        root.join("examples/gitops/README.md"),
    ];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "md") {
            files.push(p);
        }
    }
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for cap in link.captures_iter(&text) {
            let target = &cap[1];
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with('#')
                || target.starts_with("mailto:")
            {
                continue;
            }
            let path = target.split('#').next().unwrap();
            if !file.parent().unwrap().join(path).exists() {
                broken.push(format!("{}: {target}", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The same manifests against a real kube-apiserver (scripts/k8s.sh)

fn real_kubectl(
    cp: &kage_testcluster::ControlPlane,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Output {
    let mut cmd = Command::new(kubectl());
    cmd.arg("--kubeconfig").arg(cp.kubeconfig_path()).args(args);
    run(&mut cmd, stdin)
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The generation of every rendered object that has one, else its resourceVersion: on a real
/// cluster the controllers of kube-controller-manager update Deployments' status (and with it
/// the resourceVersion) on their own.
fn real_generations(cp: &kage_testcluster::ControlPlane, rendered: &str) -> Vec<String> {
    let out = real_kubectl(
        cp,
        &["get", "-f", "-", "-o", "json"],
        Some(rendered.as_bytes()),
    );
    let v: Value = serde_json::from_str(&ok(&out, "kubectl get -f")).expect("JSON");
    let items = match v["kind"].as_str() {
        Some("List") => v["items"].as_array().cloned().unwrap_or_default(),
        _ => vec![v],
    };
    items
        .iter()
        .map(|o| {
            let m = &o["metadata"];
            let version = m
                .get("generation")
                .map(Value::to_string)
                .unwrap_or_else(|| m["resourceVersion"].to_string());
            format!("{}/{}={version}", o["kind"], m["name"])
        })
        .collect()
}

/// Every deploy/ kustomization against the real API server: a server-side dry run (admission,
/// validation, CRD schemas, RBAC escalation checks), then a real server-side apply, everything
/// rendered is stored, and applying again changes no object's generation. Then the real
/// server's CRD schema validation accepts a sealed AgeSecret and refuses broken ones.
#[test]
fn every_overlay_applies_to_a_real_control_plane() {
    let cp = kage_testcluster::ControlPlane::shared();
    // A server-side dry run creates nothing, so the namespaces the manifests fill come first.
    for ns in ["shop", "kage-system"] {
        ok(
            &real_kubectl(cp, &["create", "namespace", ns], None),
            "create namespace",
        );
    }
    let root = repo();
    for dir in kustomizations(&root.join("deploy")) {
        let what = dir.strip_prefix(&root).unwrap().display().to_string();
        let rendered = kustomize(&dir);
        let apply = [
            "apply",
            "--server-side",
            "--field-manager=kage-tests",
            "-f",
            "-",
        ];
        let dry: Vec<&str> = apply.iter().copied().chain(["--dry-run=server"]).collect();
        let out = ok(
            &real_kubectl(cp, &dry, Some(rendered.as_bytes())),
            &format!("dry run of {what}"),
        );
        assert!(out.contains("(server dry run)"), "{what}: {out}");
        ok(
            &real_kubectl(cp, &apply, Some(rendered.as_bytes())),
            &format!("apply of {what}"),
        );
        let before = real_generations(cp, &rendered);
        assert_eq!(before.len(), kinds(&rendered).len(), "{what}: {before:?}");
        ok(
            &real_kubectl(cp, &apply, Some(rendered.as_bytes())),
            &format!("second apply of {what}"),
        );
        assert_eq!(
            real_generations(cp, &rendered),
            before,
            "{what}: the second apply changed something"
        );
    }

    // The CRD as the real server enforces it (established by the applies above).
    let good = "apiVersion: kage.dev/v1alpha1\nkind: AgeSecret\nmetadata: {name: ok, namespace: shop}\nspec:\n  encryptedData:\n    password: \"kage:v1:abc:def\"\n";
    let out = real_kubectl(
        cp,
        &["apply", "--dry-run=server", "-f", "-"],
        Some(good.as_bytes()),
    );
    ok(&out, "a well-formed AgeSecret");
    for (bad, field) in [
        (
            "  encryptedData:\n    password: \"not-sealed\"\n",
            "spec.encryptedData.password",
        ),
        ("  scope: everywhere\n", "spec.scope"),
        ("  suspend: \"yes\"\n", "spec.suspend"),
    ] {
        let doc = format!(
            "apiVersion: kage.dev/v1alpha1\nkind: AgeSecret\nmetadata: {{name: bad, namespace: shop}}\nspec:\n{bad}"
        );
        let out = real_kubectl(
            cp,
            &["apply", "--dry-run=server", "-f", "-"],
            Some(doc.as_bytes()),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{field}: accepted");
        assert!(
            err.contains("is invalid") && err.contains(field),
            "{field}: {err}"
        );
    }
}
