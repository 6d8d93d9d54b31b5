//! Generated CRD, `--help`, and deploy manifests.

use std::path::PathBuf;
use std::process::Command;

use kage_core::api::v1alpha1::AgeSecret;
use kube::core::CustomResourceExt;

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kage-controller"))
}

#[test]
fn committed_crd_is_up_to_date() {
    let committed = std::fs::read_to_string(repo_file("deploy/crds/agesecret.yaml"))
        .expect("deploy/crds/agesecret.yaml is committed");
    let generated = kage_controller::crd_yaml().unwrap();
    assert!(
        committed == generated,
        "deploy/crds/agesecret.yaml is stale: run `cargo run -p kage-controller -- crd > deploy/crds/agesecret.yaml`"
    );
    // The hidden subcommand prints exactly the same.
    let out = bin().arg("crd").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), generated);
}

#[test]
fn crd_schema_key_fields() {
    let crd = AgeSecret::crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("agesecrets.kage.dev"));
    assert_eq!(crd.spec.group, "kage.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "AgeSecret");
    assert_eq!(crd.spec.names.plural, "agesecrets");
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["ags".to_string()][..])
    );
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(v.served && v.storage);
    assert!(
        v.subresources.as_ref().unwrap().status.is_some(),
        "status subresource"
    );
    let cols: Vec<(&str, &str)> = v
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| (c.name.as_str(), c.json_path.as_str()))
        .collect();
    assert_eq!(
        cols,
        [
            ("Ready", r#".status.conditions[?(@.type=="Ready")].status"#),
            ("Reason", r#".status.conditions[?(@.type=="Ready")].reason"#),
            ("Age", ".metadata.creationTimestamp"),
        ]
    );

    let schema = serde_json::to_value(&v.schema.as_ref().unwrap().open_api_v3_schema).unwrap();
    let root = &schema["properties"];
    // SOPS form: top-level `sops` kept as written.
    assert_eq!(root["sops"]["type"], "object");
    assert_eq!(root["sops"]["x-kubernetes-preserve-unknown-fields"], true);
    let spec = &root["spec"]["properties"];
    assert_eq!(
        spec["scope"]["enum"],
        serde_json::json!(["strict", "namespace", "cluster"])
    );
    assert_eq!(spec["scope"]["default"], "strict");
    assert_eq!(
        spec["encryptedData"]["additionalProperties"]["pattern"],
        "^kage:v1:"
    );
    assert_eq!(spec["data"]["additionalProperties"]["type"], "string");
    assert_eq!(spec["stringData"]["additionalProperties"]["type"], "string");
    assert_eq!(spec["binding"]["type"], "string");
    assert_eq!(spec["suspend"]["type"], "boolean");
    let template = &spec["template"]["properties"];
    for field in [
        "type",
        "immutable",
        "metadata",
        "data",
        "skipOwnerReference",
    ] {
        assert!(template.get(field).is_some(), "template.{field}");
    }
    assert!(template["metadata"]["properties"]["labels"].is_object());
    assert!(template["metadata"]["properties"]["annotations"].is_object());
    let status = &root["status"]["properties"];
    for field in ["observedGeneration", "conditions", "secretName", "keyIds"] {
        assert!(status.get(field).is_some(), "status.{field}");
    }
    let cond = &status["conditions"];
    assert_eq!(cond["x-kubernetes-list-type"], "map");
    assert_eq!(
        cond["x-kubernetes-list-map-keys"],
        serde_json::json!(["type"])
    );
    let cprops = &cond["items"]["properties"];
    for field in [
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    ] {
        assert!(cprops.get(field).is_some(), "condition.{field}");
    }
}

#[test]
fn help_lists_every_flag() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--namespace",
        "--http-addr",
        "--metrics-addr",
        "--watch-namespaces",
        "--label-selector",
        "--key-renew-period",
        "--leader-elect",
        "--concurrency",
        "--allow-unbound-sops",
        "--log-format",
        "RUST_LOG",
        "KUBECONFIG",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    assert!(!help.contains("\n  crd"), "the crd subcommand is hidden");
}

#[test]
fn bad_flags_are_usage_errors() {
    let out = bin().args(["--key-renew-period", "soon"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid duration"));
}
