//! The `kage` CLI's cluster commands against the real `kage-controller` (no fake on either side):
//! fetch the cluster's key into `.kage.yaml`, seal, `kubectl apply`, `kubectl wait`, validate
//! through the controller, rotate, refuse to retire a key in use, re-encrypt through
//! `/v1/reencrypt`, retire, back up, and restore into a second cluster that then decrypts the
//! same manifests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kage_core::api::v1alpha1::AgeSecret;
use kage_core::keys::parse_recipients;
use kube::api::Api;

use kage_testcluster::Server;

use crate::e2e::{Env, data_of, eventually, kubectl, wait_reason};

/// The `kage` binary of this build, next to `kage-controller` (`cargo test --workspace` builds
/// both); built with cargo when missing. After `cargo test -p kage-controller` alone, an older
/// `kage` may be used: build it first (`cargo build -p kage`) when testing CLI changes. (Always
/// rebuilding here would recompile the dependencies with `-p kage`'s feature set.)
fn kage_bin() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    let dir = Path::new(env!("CARGO_BIN_EXE_kage-controller"))
        .parent()
        .expect("target directory")
        .to_path_buf();
    let bin = dir.join("kage");
    BUILT.call_once(|| {
        if bin.is_file() {
            return;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "-j2", "-p", "kage", "--bin", "kage"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        assert!(cmd.status().expect("cargo").success(), "building kage");
    });
    bin
}

/// One command's outcome.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A user's working copy: `kage` and `kubectl` run in `dir` with `kubeconfig`.
struct Repo<'a> {
    dir: &'a Path,
}

impl Repo<'_> {
    async fn kage(&self, kubeconfig: &Path, args: &[&str]) -> Run {
        let out = tokio::process::Command::new(kage_bin())
            .args(args)
            .current_dir(self.dir)
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", self.dir)
            .env("NO_COLOR", "1")
            .output()
            .await
            .expect("kage runs");
        Run::from(out)
    }

    async fn kubectl(&self, kubeconfig: &Path, args: &[&str]) -> Run {
        let out = tokio::process::Command::new(kubectl())
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .current_dir(self.dir)
            .output()
            .await
            .expect("kubectl runs");
        Run::from(out)
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.join(rel)).unwrap()
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

const SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
type: Opaque
stringData:
  username: app
  password: correct-horse-battery-staple
";

async fn key_ids(api: &Api<AgeSecret>, name: &str) -> Vec<String> {
    api.get(name)
        .await
        .ok()
        .and_then(|a| a.status)
        .map(|s| s.key_ids)
        .unwrap_or_default()
}

async fn key_label(env: &Env, kid: &str) -> Option<String> {
    let api: Api<Secret> = Api::namespaced(env.admin.clone(), "kage-system");
    let s = api.get(&format!("kage-key-{kid}")).await.ok()?;
    s.metadata.labels?.get("kage.dev/key").cloned()
}

async fn assert_secret_matches_input(env: &Env) {
    let secrets: Api<Secret> = Api::namespaced(env.admin.clone(), "prod");
    let s = secrets.get("db").await.expect("Secret prod/db");
    assert_eq!(data_of(&s, "username").as_deref(), Some(&b"app"[..]));
    assert_eq!(
        data_of(&s, "password").as_deref(),
        Some(&b"correct-horse-battery-staple"[..])
    );
}

crate::e2e::on_both_servers!(cli_cluster_commands_against_the_real_controller);

/// On a real control plane the CLI reaches the controller through kube-apiserver's own service
/// proxy (`…/services/kage-controller:http/proxy/…`), endpoints and all; the disaster-recovery
/// cluster is a second control plane running at the same time.
async fn cli_cluster_commands_against_the_real_controller(server: Server) {
    let mut env = Env::installed(server).await;
    env.launch(&[]).await;
    env.namespace("prod").await;
    env.expose_http().await;
    let kc = env.cluster.kubeconfig_path();
    let work = tempfile::tempdir().unwrap();
    let repo = Repo { dir: work.path() };
    let admin = repo.kage(&kc, &["keygen", "-o", "admin.txt"]).await.ok();
    let admin_recipient = admin
        .stderr
        .lines()
        .chain(admin.stdout.lines())
        .find_map(|l| l.split_whitespace().find(|w| w.starts_with("age1")))
        .expect("keygen prints the recipient")
        .to_string();

    // 1. The cluster's key into .kage.yaml (a placeholder recipient is replaced).
    repo.write(
        ".kage.yaml",
        "# kage environments\nenvironments:\n  - name: prod\n    paths: [\"prod/**\"]\n    recipients: [\"age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq\"]\n",
    );
    repo.kage(&kc, &["keys", "fetch", "--write-env", "prod"])
        .await
        .ok();
    let published = env.recipients().await;
    assert_eq!(published.len(), 1);
    let kid1 = published[0].kid().to_string();
    assert!(
        repo.read(".kage.yaml").contains(&published[0].to_string()),
        "{}",
        repo.read(".kage.yaml")
    );

    // 2. Seal, apply with kubectl, wait with kubectl: the Secret equals the input.
    repo.write("secret.yaml", SECRET);
    std::fs::create_dir(work.path().join("prod")).unwrap();
    repo.kage(
        &kc,
        &["seal", "secret.yaml", "--env", "prod", "-o", "prod/db.yaml"],
    )
    .await
    .ok();
    assert!(
        repo.read("prod/db.yaml")
            .contains(&format!("kage:v1:{kid1}:"))
    );
    // The same Secret as a SOPS AgeSecret (the controller re-encrypts that form too).
    repo.write("api-secret.yaml", &SECRET.replace("name: db", "name: api"));
    let sops_args = [
        "seal",
        "--sops",
        "--as-agesecret",
        "api-secret.yaml",
        "--env",
        "prod",
        "-o",
        "prod/api.yaml",
    ];
    repo.kage(&kc, &sops_args).await.ok();
    let apply = ["apply", "-f", "prod/db.yaml", "-f", "prod/api.yaml"];
    repo.kubectl(&kc, &apply).await.ok();
    repo.kubectl(
        &kc,
        &[
            "wait",
            "--for=condition=Ready",
            "agesecret/api",
            "agesecret/db",
            "-n",
            "prod",
            "--timeout=30s",
        ],
    )
    .await
    .ok();
    assert_secret_matches_input(&env).await;
    let ags_api: Api<AgeSecret> = Api::namespaced(env.admin.clone(), "prod");
    assert_eq!(key_ids(&ags_api, "db").await, vec![kid1.clone()]);

    // 3. validate --cluster asks the controller (no plaintext back).
    let v = repo
        .kage(&kc, &["validate", "--cluster", "prod/db.yaml"])
        .await
        .ok();
    assert!(v.stdout.contains("prod/db: ok"), "{}", v.stdout);
    // The environment's `cluster:` in .kage.yaml picks context and controller namespace (a
    // namespace without a controller: exit 7); the flag overrides it.
    let config = repo.read(".kage.yaml");
    let kubeconfig = std::fs::read_to_string(&kc).unwrap();
    let context = kubeconfig
        .lines()
        .find_map(|l| l.strip_prefix("current-context: "))
        .expect("a current context");
    repo.write(
        ".kage.yaml",
        &format!("{config}    cluster: {{context: {context}, namespace: nowhere}}\n"),
    );
    if server == Server::TestCluster {
        let elsewhere = repo
            .kage(&kc, &["validate", "--cluster", "prod/db.yaml"])
            .await;
        assert_eq!(elsewhere.code, 7, "{}", elsewhere.stderr);
        assert!(elsewhere.stderr.contains("nowhere"), "{}", elsewhere.stderr);
    } else {
        // kube-apiserver answers a missing Service's proxy with 503 "no endpoints available"
        // (kage-testcluster: 404), which kube-rs retries: the CLI fails only at its timeout,
        // not with exit 7 (docs/testcluster.md, "Differences from kube-apiserver, measured").
        let elsewhere = repo
            .kage(
                &kc,
                &["validate", "--cluster", "--timeout", "3", "prod/db.yaml"],
            )
            .await;
        assert_ne!(elsewhere.code, 0, "{}", elsewhere.stderr);
    }
    let flag = [
        "validate",
        "--cluster",
        "--controller-namespace",
        "kage-system",
        "prod/db.yaml",
    ];
    assert!(
        repo.kage(&kc, &flag)
            .await
            .ok()
            .stdout
            .contains("prod/db: ok")
    );
    repo.write(".kage.yaml", &config);

    // 4. Rotation: a new current key is published, the old object stays Ready.
    let rot = repo
        .kage(&kc, &["keys", "rotate", "--wait", "30"])
        .await
        .ok();
    let now = env.recipients().await;
    assert_eq!(now.len(), 2, "{}", env.log());
    let kid2 = now[0].kid().to_string();
    assert_ne!(kid1, kid2);
    assert!(
        rot.stdout.starts_with(&format!("{kid2}\t")),
        "{}",
        rot.stdout
    );
    assert!(wait_reason(&ags_api, "db", "True", "Decrypted").await);

    // 5. Retiring the old key is refused while prod/db uses it.
    let refused = repo.kage(&kc, &["keys", "retire", &kid1]).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("still used by 2 AgeSecret(s): prod/api, prod/db"),
        "{}",
        refused.stderr
    );
    assert_eq!(key_label(&env, &kid1).await.as_deref(), Some("active"));

    // 6. Re-encrypt through the controller (no identity here), re-apply: the new kid in keyIds.
    repo.kage(&kc, &["keys", "fetch", "--write-env", "prod"])
        .await
        .ok();
    let before = repo.read("prod/db.yaml");
    let sops_before = repo.read("prod/api.yaml");
    let re = repo
        .kage(&kc, &["reencrypt", "prod/db.yaml", "prod/api.yaml"])
        .await
        .ok();
    for f in ["prod/db.yaml", "prod/api.yaml"] {
        let want = format!("{f}: re-encrypted by the controller");
        assert!(re.stderr.contains(&want), "{}", re.stderr);
    }
    // The SOPS file: only the sops metadata changed (the values and the MAC stay as they were),
    // in the same layout.
    let sops_after = repo.read("prod/api.yaml");
    let (spec_before, meta_before) = sops_before.split_once("\nsops:\n").unwrap();
    let (spec_after, meta_after) = sops_after.split_once("\nsops:\n").expect(&sops_after);
    assert_eq!(spec_before, spec_after);
    assert_ne!(meta_before, meta_after);
    assert!(meta_after.contains(&now[0].to_string()), "{sops_after}");
    assert!(
        !meta_after.contains(&published[0].to_string()),
        "{sops_after}"
    );
    let mac = |t: &str| {
        t.lines()
            .find(|l| l.trim_start().starts_with("mac:"))
            .map(str::to_string)
    };
    assert_eq!(mac(meta_before), mac(meta_after));
    let fields = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("    ") && !l.starts_with("     "))
            .filter_map(|l| l.trim().split(':').next().map(str::to_string))
            .collect()
    };
    assert_eq!(fields(meta_before), fields(meta_after));
    let after = repo.read("prod/db.yaml");
    assert!(after.contains(&format!("kage:v1:{kid2}:")), "{after}");
    assert!(!after.contains(&kid1), "{after}");
    // Only the values changed: every other line of the file is kept as it was.
    let unchanged = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.contains("kage:v1:"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(unchanged(&before), unchanged(&after));
    repo.kubectl(&kc, &apply).await.ok();
    let moved = eventually(Duration::from_secs(20), || async {
        key_ids(&ags_api, "db").await == vec![kid2.clone()]
            && key_ids(&ags_api, "api").await == vec![kid2.clone()]
    })
    .await;
    assert!(moved, "keyIds not updated; log:\n{}", env.log());
    assert!(wait_reason(&ags_api, "db", "True", "Decrypted").await);
    assert!(
        wait_reason(&ags_api, "api", "True", "Decrypted").await,
        "{}\n{}",
        repo.kubectl(&kc, &["get", "agesecrets", "-A", "-o", "yaml"])
            .await
            .stdout,
        env.log()
    );
    assert_secret_matches_input(&env).await;
    let usage = repo.kage(&kc, &["keys", "usage"]).await.ok();
    assert!(
        usage.stdout.contains(&format!("{kid2}\tprod/db")),
        "{}",
        usage.stdout
    );
    assert!(
        usage.stdout.contains(&format!("{kid1}\t-\n")),
        "{}",
        usage.stdout
    );

    // 7. Now the old key can be retired; the object stays Ready.
    repo.kage(&kc, &["keys", "retire", &kid1]).await.ok();
    assert_eq!(key_label(&env, &kid1).await.as_deref(), Some("retired"));
    let cms: Api<ConfigMap> = Api::namespaced(env.admin.clone(), "kage-system");
    let republished = eventually(Duration::from_secs(15), || async {
        cms.get("kage-public-keys")
            .await
            .ok()
            .and_then(|cm| cm.data)
            .and_then(|d| d.get("recipients.txt").cloned())
            .and_then(|t| parse_recipients(&t).ok())
            .is_some_and(|r| r.len() == 1 && r[0].kid().to_string() == kid2)
    })
    .await;
    assert!(
        republished,
        "retired key still published; log:\n{}",
        env.log()
    );
    assert!(wait_reason(&ags_api, "db", "True", "Decrypted").await);

    // 8. Backup to an admin recipient; restore into a second cluster before its controller
    // starts: it adopts the restored keys (no new key) and decrypts the same manifest.
    repo.kage(
        &kc,
        &["keys", "backup", "-r", &admin_recipient, "-o", "keys.age"],
    )
    .await
    .ok();
    assert!(!repo.read("keys.age").contains("AGE-SECRET-KEY"));
    let mut dr = Env::installed(server).await;
    let kc2 = dr.cluster.kubeconfig_path();
    repo.kage(&kc2, &["keys", "restore", "keys.age", "-i", "admin.txt"])
        .await
        .ok();
    dr.launch(&[]).await;
    let restored: Vec<String> = dr
        .recipients()
        .await
        .iter()
        .map(|r| r.kid().to_string())
        .collect();
    assert_eq!(restored, vec![kid2.clone()], "log:\n{}", dr.log());
    dr.namespace("prod").await;
    repo.kubectl(&kc2, &["apply", "-f", "prod/db.yaml"])
        .await
        .ok();
    let dr_api: Api<AgeSecret> = Api::namespaced(dr.admin.clone(), "prod");
    assert!(
        wait_reason(&dr_api, "db", "True", "Decrypted").await,
        "log:\n{}",
        dr.log()
    );
    assert_secret_matches_input(&dr).await;

    // No plaintext and no key material in any log line of either controller.
    for log in [env.log(), dr.log()] {
        assert!(!log.contains("correct-horse"), "plaintext in a log");
        assert!(!log.contains("AGE-SECRET-KEY"), "key material in a log");
    }
}
