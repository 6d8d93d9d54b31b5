//! [`TestCluster`]: start the server in process, get kube clients, inject faults.

use crate::faults::Faults;
use crate::rbac::UserInfo;
use crate::server::{AppState, ServerConfig, router};
use crate::store::{Store, StoreConfig, random_token};
use crate::tls;
use anyhow::{Context as _, Result};
use base64::Engine as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// How to start a [`TestCluster`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Serve plain HTTP instead of HTTPS; requests without credentials then act as the
    /// admin (client-go sends no bearer token over plain HTTP).
    pub http: bool,
    /// Where to write the kubeconfig; a temporary directory when `None`.
    pub kubeconfig: Option<PathBuf>,
    /// Watch history length: older resourceVersions get 410 Gone.
    pub history_limit: usize,
    /// Interval of BOOKMARK events.
    pub bookmark_interval: Duration,
    /// Print `METHOD URI -> STATUS` for every request on stderr (also with the
    /// `KAGE_TESTCLUSTER_LOG=1` environment variable).
    pub log_requests: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            http: false,
            kubeconfig: None,
            history_limit: StoreConfig::default().history_limit,
            bookmark_interval: Duration::from_secs(2),
            log_requests: std::env::var_os("KAGE_TESTCLUSTER_LOG").is_some_and(|v| v == "1"),
        }
    }
}

/// A running in-memory API server. Dropping it stops the server.
pub struct TestCluster {
    url: String,
    state: Arc<AppState>,
    kubeconfig_path: PathBuf,
    _dir: Option<tempfile::TempDir>,
    ca_pem: Option<String>,
    ca_der: Option<Vec<u8>>,
    admin_token: String,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl TestCluster {
    /// Start with defaults: HTTPS on a free loopback port, kubeconfig in a temp dir.
    pub async fn start() -> Result<Self> {
        Self::start_with(Options::default()).await
    }

    /// Start with options.
    pub async fn start_with(opts: Options) -> Result<Self> {
        tls::install_ring_provider();
        let admin_token = format!("kage-tc-admin.{}", random_token());
        let mut store = Store::new(&StoreConfig {
            history_limit: opts.history_limit,
        });
        store
            .user_tokens
            .insert(admin_token.clone(), UserInfo::admin());
        let state = AppState::new(
            store,
            ServerConfig {
                bookmark_interval: opts.bookmark_interval,
                admin_token: admin_token.clone(),
                anonymous_is_admin: opts.http,
                log_requests: opts.log_requests,
            },
        );
        let listener = TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("binding {}", opts.listen))?;
        let addr = listener.local_addr().context("local address")?;
        let (acceptor, ca_pem, ca_der, scheme) = if opts.http {
            (None, None, None, "http")
        } else {
            let certs = tls::generate()?;
            let config = tls::server_config(&certs)?;
            (
                Some(tokio_rustls::TlsAcceptor::from(config)),
                Some(certs.ca_pem.clone()),
                Some(certs.ca_der.clone()),
                "https",
            )
        };
        let url = format!("{scheme}://{addr}");
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, router(state.clone()), acceptor, rx));
        let (dir, kubeconfig_path) = match opts.kubeconfig {
            Some(p) => (None, p),
            None => {
                let d = tempfile::tempdir().context("temporary directory")?;
                let p = d.path().join("kubeconfig");
                (Some(d), p)
            }
        };
        write_kubeconfig(&kubeconfig_path, &url, ca_pem.as_deref(), &admin_token)?;
        Ok(TestCluster {
            url,
            state,
            kubeconfig_path,
            _dir: dir,
            ca_pem,
            ca_der,
            admin_token,
            shutdown,
            task: Some(task),
        })
    }

    /// The server URL, e.g. `https://127.0.0.1:43123`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The kubeconfig (admin user, current context set).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The admin bearer token (bypasses RBAC, like `system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The CA certificate (PEM), `None` in HTTP mode.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The fault-injection handle.
    pub fn faults(&self) -> Faults {
        self.state.faults.clone()
    }

    /// A kube client as the admin.
    pub fn client(&self) -> kube::Client {
        self.client_for_token(&self.admin_token)
    }

    /// A kube client authenticating with a bearer token.
    ///
    /// # Panics
    /// If the client cannot be built (a broken TLS setup), which is a bug in this crate.
    pub fn client_for_token(&self, token: &str) -> kube::Client {
        self.try_client_for_token(token)
            .unwrap_or_else(|e| panic!("building a kube client for {}: {e:#}", self.url))
    }

    /// A kube client authenticating with a bearer token.
    pub fn try_client_for_token(&self, token: &str) -> Result<kube::Client> {
        kube::Client::try_from(self.kube_config(token)?).context("building the kube client")
    }

    /// A kube `Config` for this cluster and a bearer token, to adjust before building a
    /// client (e.g. `default_retry = false` to see 503s unretried).
    pub fn kube_config(&self, token: &str) -> Result<kube::Config> {
        let mut config = kube::Config::new(self.url.parse().context("server URL")?);
        config.root_cert = self.ca_der.clone().map(|c| vec![c]);
        config.auth_info.token = Some(secrecy::SecretString::from(token.to_string()));
        config.read_timeout = None;
        Ok(config)
    }

    /// Issue a token for a ServiceAccount (creating the ServiceAccount if missing), as
    /// `kubectl create token` does.
    pub fn service_account_token(&self, namespace: &str, name: &str) -> Result<String> {
        let mut store = self.state.store();
        if store.issue_token(namespace, name).is_err() {
            let rt = store
                .registry
                .get("", "v1", "serviceaccounts")
                .cloned()
                .context("serviceaccounts registered")?;
            let opts = crate::store::WriteOptions {
                manager: "kage-testcluster".into(),
                dry_run: false,
                api_version: "v1".into(),
            };
            let obj = serde_json::json!({"metadata": {"name": name}});
            store
                .create(&rt, namespace, obj, &opts)
                .map_err(|e| anyhow::anyhow!("creating ServiceAccount {namespace}/{name}: {e}"))?;
        }
        store
            .issue_token(namespace, name)
            .map_err(|e| anyhow::anyhow!("issuing a token for {namespace}/{name}: {e}"))
    }

    /// A kube client as a ServiceAccount (subject to RBAC).
    pub fn service_account_client(&self, namespace: &str, name: &str) -> Result<kube::Client> {
        let token = self.service_account_token(namespace, name)?;
        self.try_client_for_token(&token)
    }

    /// Register a static token for a user with groups (subject to RBAC).
    pub fn add_user_token(&self, token: &str, user: &str, groups: &[&str]) {
        let mut g: Vec<String> = groups.iter().map(|s| s.to_string()).collect();
        if !g.iter().any(|x| x == "system:authenticated") {
            g.push("system:authenticated".into());
        }
        self.state.store().user_tokens.insert(
            token.to_string(),
            UserInfo {
                name: user.to_string(),
                groups: g,
            },
        );
    }

    /// Route the service proxy for `namespace/service` to `address` (`host:port`).
    pub fn register_upstream(&self, namespace: &str, service: &str, address: &str) {
        self.state.store().upstreams.insert(
            (namespace.to_string(), service.to_string()),
            address.to_string(),
        );
    }

    /// Forget the watch history: watches from any earlier resourceVersion get 410 Gone.
    pub fn compact(&self) {
        self.state.store().compact();
    }

    /// Number of open watch streams.
    pub fn open_watches(&self) -> usize {
        self.state.store().watch_count()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.state.store().resource_version()
    }

    /// The API as an axum router over this cluster's state (serve it yourself, or use
    /// [`TestCluster::in_process_client`]).
    pub fn router(&self) -> axum::Router {
        router(self.state.clone())
    }

    /// A kube client that calls the router in process (no sockets, no TLS), as the admin.
    pub fn in_process_client(&self) -> kube::Client {
        let token = format!("Bearer {}", self.admin_token);
        let svc = tower::ServiceBuilder::new()
            .map_request(move |mut req: http::Request<kube::client::Body>| {
                if let Ok(v) = http::HeaderValue::from_str(&token) {
                    req.headers_mut().insert(http::header::AUTHORIZATION, v);
                }
                req
            })
            .service(self.router());
        kube::Client::new(svc, "default")
    }

    /// Stop serving (also done on drop).
    pub fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accept connections until `shutdown` flips; open connections are aborted on stop.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let tls = tls.clone();
                conns.spawn(async move {
                    let svc = TowerToHyperService::new(app);
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        Some(acceptor) => {
                            let Ok(s) = acceptor.accept(stream).await else { return };
                            let _ = builder.serve_connection_with_upgrades(TokioIo::new(s), svc).await;
                        }
                        None => {
                            let _ = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
}

/// Write the kubeconfig atomically (temp file beside it, then rename).
pub fn write_kubeconfig(path: &Path, url: &str, ca_pem: Option<&str>, token: &str) -> Result<()> {
    let ca = ca_pem
        .map(|pem| {
            format!(
                "    certificate-authority-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        })
        .unwrap_or_default();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kage-testcluster\n  cluster:\n    server: {url}\n{ca}users:\n- name: kage-testcluster-admin\n  user:\n    token: {token}\ncontexts:\n- name: kage-testcluster\n  context:\n    cluster: kage-testcluster\n    user: kage-testcluster-admin\n    namespace: default\ncurrent-context: kage-testcluster\npreferences: {{}}\n"
    );
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).context("temporary kubeconfig")?;
    std::io::Write::write_all(&mut tmp, text.as_bytes()).context("writing kubeconfig")?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
