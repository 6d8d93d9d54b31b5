//! The deploy/ manifests: RBAC is least-privilege and covers every call the controller makes,
//! the Deployment's flags parse, and the kustomize base renders.

use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use serde_json::Value;

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

fn docs(rel: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo_file(rel)).unwrap();
    serde_saphyr::from_str_multiple(&text).unwrap()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} missing"))
}

/// Does `rules` grant `verb` on `group`/`resource` (optionally for one name)?
fn allows(rules: &Value, group: &str, resource: &str, verb: &str, name: Option<&str>) -> bool {
    rules.as_array().unwrap().iter().any(|r| {
        let has = |field: &str, want: &str| {
            r[field]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == want))
        };
        let names_ok = match r.get("resourceNames").and_then(Value::as_array) {
            None => true,
            Some(names) => name.is_some_and(|n| names.iter().any(|v| v == n)),
        };
        has("apiGroups", group) && has("resources", resource) && has("verbs", verb) && names_ok
    })
}

#[test]
fn rbac_covers_every_call_and_nothing_more() {
    let d = docs("deploy/base/rbac.yaml");
    let cluster = &find(&d, "ClusterRole", "kage-controller")["rules"];
    let ns = &find(&d, "Role", "kage-controller")["rules"];
    // Every verb the controller uses.
    for (g, r, v) in [
        ("kage.dev", "agesecrets", "list"),
        ("kage.dev", "agesecrets", "watch"),
        ("kage.dev", "agesecrets/status", "patch"),
        ("", "secrets", "get"),
        ("", "secrets", "list"),
        ("", "secrets", "watch"),
        ("", "secrets", "patch"),
        ("events.k8s.io", "events", "create"),
        ("events.k8s.io", "events", "patch"),
    ] {
        assert!(
            allows(cluster, g, r, v, None),
            "ClusterRole lacks {v} {g}/{r}"
        );
    }
    for (g, r, v, n) in [
        ("", "secrets", "create", None),
        ("", "configmaps", "list", Some("kage-public-keys")),
        ("", "configmaps", "watch", Some("kage-public-keys")),
        ("", "configmaps", "patch", Some("kage-public-keys")),
        // The first server-side apply creates it: kube-apiserver authorizes that as create.
        ("", "configmaps", "create", Some("kage-public-keys")),
        ("coordination.k8s.io", "leases", "create", None),
        (
            "coordination.k8s.io",
            "leases",
            "get",
            Some("kage-controller-leader"),
        ),
        (
            "coordination.k8s.io",
            "leases",
            "update",
            Some("kage-controller-leader"),
        ),
    ] {
        assert!(allows(ns, g, r, v, n), "Role lacks {v} {g}/{r}");
    }
    // Least privilege: no wildcards, no deletes, no writes to AgeSecrets themselves, ConfigMap
    // patch only for the public keys.
    for rules in [cluster, ns] {
        let text = rules.to_string();
        assert!(!text.contains("\"*\""), "wildcard in {text}");
        assert!(!text.contains("delete"), "delete in {text}");
    }
    assert!(!allows(cluster, "kage.dev", "agesecrets", "patch", None));
    assert!(!allows(cluster, "kage.dev", "agesecrets", "update", None));
    // The apply that makes a new Secret: kube-apiserver authorizes it as create (proved by the
    // e2e suite on a real control plane; patch alone is refused there).
    assert!(allows(cluster, "", "secrets", "create", None));
    assert!(!allows(
        ns,
        "",
        "configmaps",
        "patch",
        Some("something-else")
    ));
    assert!(!allows(cluster, "", "configmaps", "get", None));

    // Everyone authenticated may read the public keys, nothing else.
    let reader = &find(&d, "Role", "kage-public-keys-reader")["rules"];
    assert!(allows(
        reader,
        "",
        "configmaps",
        "get",
        Some("kage-public-keys")
    ));
    assert!(!allows(reader, "", "configmaps", "get", Some("other")));
    assert!(!allows(reader, "", "secrets", "get", None));
    let binding = find(&d, "RoleBinding", "kage-public-keys-reader");
    assert_eq!(binding["subjects"][0]["name"], "system:authenticated");
}

#[test]
fn deployment_flags_parse() {
    let d = docs("deploy/base/deployment.yaml");
    let dep = find(&d, "Deployment", "kage-controller");
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    let mut argv = vec!["kage-controller".to_string()];
    argv.extend(
        c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string()),
    );
    let args = kage_controller::cli::Args::try_parse_from(&argv).unwrap();
    assert!(args.leader_elect);
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"][0], "ALL");
    assert_eq!(
        dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );
}

#[test]
fn kustomize_base_renders() {
    let kubectl = std::env::var("KAGE_TEST_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let out = Command::new(kubectl)
        .args(["kustomize"])
        .arg(repo_file("deploy/base"))
        .output()
        .expect("kubectl on the PATH (scripts/tools.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered: Vec<Value> =
        serde_saphyr::from_str_multiple(std::str::from_utf8(&out.stdout).unwrap()).unwrap();
    let kinds: Vec<&str> = rendered
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    for k in [
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "NetworkPolicy",
        "Service",
    ] {
        assert!(kinds.contains(&k), "{k} not rendered: {kinds:?}");
    }
}
