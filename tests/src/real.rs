//! [`ControlPlane`]: a real etcd, kube-apiserver and kube-controller-manager started through
//! `scripts/k8s.sh start` for one test (or one test binary, [`ControlPlane::shared`]), stopped
//! on drop or when the test process ends.

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// `scripts/k8s.sh` of this checkout.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/k8s.sh")
}

/// A running real control plane. Its directory holds `kubeconfig` (cluster-admin), `pids`,
/// `pki/` and `logs/`.
pub struct ControlPlane {
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    url: String,
    ca_pem: String,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("url", &self.url)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Start a fresh control plane in a temporary directory (blocking: seconds with built binaries).
    pub fn start() -> Result<ControlPlane> {
        let tmp = tempfile::Builder::new()
            .prefix("kage-k8s-")
            .tempdir()
            .context("temporary directory")?;
        let dir = tmp.path().to_path_buf();
        let out = Command::new(script())
            .arg("start")
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .context("running scripts/k8s.sh start")?;
        if !out.status.success() {
            bail!(
                "scripts/k8s.sh start {} failed:\n{}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Whatever ends this process (a panic that aborts, a killed test binary), the cluster
        // goes with it: a watcher stops it once this pid is gone.
        let me = std::process::id();
        let watcher = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 1; done; \"$0\" stop \"$1\" >/dev/null 2>&1; rm -rf \"$1\""
        );
        Command::new("bash")
            .args(["-c", &watcher])
            .arg(script())
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the control plane's watcher")?;
        let kubeconfig = std::fs::read_to_string(dir.join("kubeconfig")).context("kubeconfig")?;
        let url = kubeconfig
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .context("no server in the kubeconfig")?
            .to_string();
        let ca_pem = std::fs::read_to_string(dir.join("pki/ca.crt")).context("CA")?;
        Ok(ControlPlane {
            dir,
            _tmp: Some(tmp),
            url,
            ca_pem,
        })
    }

    /// One control plane for the whole test binary (started on first use, stopped when the
    /// process exits). Tests sharing it use a namespace each.
    ///
    /// # Panics
    /// If it cannot be started (the message has the failing step and its log).
    pub fn shared() -> &'static ControlPlane {
        static SHARED: OnceLock<ControlPlane> = OnceLock::new();
        SHARED.get_or_init(|| {
            let mut cp = ControlPlane::start().unwrap_or_else(|e| panic!("{e:#}"));
            // The watcher removes it; a static is never dropped.
            if let Some(t) = cp._tmp.take() {
                let _ = t.keep();
            }
            cp
        })
    }

    /// The API server URL (`https://127.0.0.1:<port>`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The cluster CA (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The cluster-admin kubeconfig (client certificate in group `system:masters`).
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The directory (`logs/` has each component's log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A cluster-admin client for the current tokio runtime.
    pub async fn client(&self) -> Result<kube::Client> {
        crate::tls::install_ring_provider();
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig_path())
            .context("reading the kubeconfig")?;
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .context("loading the kubeconfig")?;
        kube::Client::try_from(config).context("building the client")
    }

    /// A kube `Config` for a bearer token (no client certificate).
    pub fn kube_config(&self, token: &str) -> Result<kube::Config> {
        crate::tls::install_ring_provider();
        let mut config = kube::Config::new(self.url.parse().context("server URL")?);
        let der = rustls_pemfile_der(&self.ca_pem)?;
        config.root_cert = Some(vec![der]);
        config.auth_info.token = Some(secrecy::SecretString::from(token.to_string()));
        config.read_timeout = None;
        Ok(config)
    }

    /// A token for a ServiceAccount from the TokenRequest API (the ServiceAccount, and its
    /// namespace, created when missing), as `kubectl create token` does.
    pub async fn service_account_token(&self, namespace: &str, name: &str) -> Result<String> {
        let admin = self.client().await?;
        let nss: Api<Namespace> = Api::all(admin.clone());
        if nss.get_opt(namespace).await?.is_none() {
            let ns: Namespace =
                serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))?;
            match nss.create(&PostParams::default(), &ns).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e).context("creating the namespace"),
            }
        }
        let sas: Api<ServiceAccount> = Api::namespaced(admin, namespace);
        if sas.get_opt(name).await?.is_none() {
            let sa: ServiceAccount =
                serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
            match sas.create(&PostParams::default(), &sa).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e).context("creating the ServiceAccount"),
            }
        }
        let req = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..Default::default()
            }),
            ..Default::default()
        };
        let answer = sas
            .create_token_request(name, &PostParams::default(), &req)
            .await
            .with_context(|| format!("TokenRequest for {namespace}/{name}"))?;
        let answer = serde_json::to_value(answer)?;
        answer["status"]["token"]
            .as_str()
            .map(str::to_string)
            .context("TokenRequest answered without a token")
    }

    /// The last lines of each component's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for c in ["etcd", "kube-apiserver", "kube-controller-manager"] {
            let text =
                std::fs::read_to_string(self.dir.join(format!("logs/{c}.log"))).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            out.push_str(&format!("--- {c}:\n{}\n", tail.join("\n")));
        }
        out
    }

    /// Stop it now (also done on drop).
    pub fn stop(&self) -> Result<()> {
        if !self.dir.join("pids").exists() {
            return Ok(());
        }
        let out = Command::new(script())
            .arg("stop")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output()
            .context("running scripts/k8s.sh stop")?;
        if !out.status.success() {
            bail!(
                "scripts/k8s.sh stop: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("{e:#}");
        }
    }
}

/// The DER of the first certificate in a PEM text.
fn rustls_pemfile_der(pem: &str) -> Result<Vec<u8>> {
    use base64::Engine as _;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .context("decoding the CA certificate")
}
