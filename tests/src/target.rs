//! Where an end-to-end suite runs: this crate's in-memory server, a real control plane started
//! through `scripts/k8s.sh` ([`ControlPlane`]), or an existing cluster when
//! `KAGE_E2E_KUBECONFIG` names a kubeconfig.

use crate::cluster::TestCluster;
use crate::real::ControlPlane;
use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};

/// The environment variable that points the end-to-end suites at an existing cluster.
pub const E2E_KUBECONFIG: &str = "KAGE_E2E_KUBECONFIG";

/// Which server a suite runs against; every end-to-end suite runs once per value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// kage-testcluster, in process.
    TestCluster,
    /// A real kube-apiserver, etcd and kube-controller-manager (`scripts/k8s.sh start`).
    Kubernetes,
}

/// A control plane owned by one test, or the one shared by the test binary.
#[derive(Debug)]
pub enum Plane {
    /// Started for this test, stopped when the [`Target`] drops.
    Owned(ControlPlane),
    /// [`ControlPlane::shared`].
    Shared(&'static ControlPlane),
}

impl std::ops::Deref for Plane {
    type Target = ControlPlane;
    fn deref(&self) -> &ControlPlane {
        match self {
            Plane::Owned(c) => c,
            Plane::Shared(c) => c,
        }
    }
}

/// The cluster an end-to-end test talks to.
pub enum Target {
    /// This crate's server, started for the test.
    Local(TestCluster),
    /// A real control plane.
    Kubernetes {
        /// The processes and their files.
        plane: Plane,
        /// A cluster-admin client on the test's runtime.
        client: kube::Client,
    },
    /// An existing cluster from `KAGE_E2E_KUBECONFIG`.
    Real {
        /// Its kubeconfig.
        kubeconfig: PathBuf,
        /// A client from the kubeconfig's current context.
        client: kube::Client,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Local(c) => f.debug_tuple("Local").field(c).finish(),
            Target::Kubernetes { plane, .. } => f.debug_tuple("Kubernetes").field(plane).finish(),
            Target::Real { kubeconfig, .. } => f
                .debug_struct("Real")
                .field("kubeconfig", kubeconfig)
                .finish_non_exhaustive(),
        }
    }
}

impl Target {
    /// A real cluster if `KAGE_E2E_KUBECONFIG` is set, else a fresh [`TestCluster`].
    pub async fn from_env() -> Result<Target> {
        match std::env::var_os(E2E_KUBECONFIG) {
            Some(path) if !path.is_empty() => {
                crate::tls::install_ring_provider();
                let kubeconfig = PathBuf::from(path);
                let kc = kube::config::Kubeconfig::read_from(&kubeconfig)
                    .with_context(|| format!("reading {}", kubeconfig.display()))?;
                let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .context("loading the kubeconfig")?;
                let client = kube::Client::try_from(config).context("building the client")?;
                Ok(Target::Real { kubeconfig, client })
            }
            _ => Ok(Target::Local(TestCluster::start().await?)),
        }
    }

    /// A fresh server of this kind for one test: a new [`TestCluster`], or a new control plane
    /// (for tests that change cluster-wide state, such as a controller watching every namespace).
    pub async fn start(server: Server) -> Result<Target> {
        match server {
            Server::TestCluster => Ok(Target::Local(TestCluster::start().await?)),
            Server::Kubernetes => {
                let cp = tokio::task::spawn_blocking(ControlPlane::start)
                    .await
                    .context("starting the control plane")??;
                let client = cp.client().await?;
                Ok(Target::Kubernetes {
                    plane: Plane::Owned(cp),
                    client,
                })
            }
        }
    }

    /// A server of this kind that tests may share (each in its own namespace): a new
    /// [`TestCluster`] (it is cheap), or the test binary's one control plane.
    pub async fn shared(server: Server) -> Result<Target> {
        match server {
            Server::TestCluster => Ok(Target::Local(TestCluster::start().await?)),
            Server::Kubernetes => {
                let cp = tokio::task::spawn_blocking(ControlPlane::shared)
                    .await
                    .context("starting the shared control plane")?;
                let client = cp.client().await?;
                Ok(Target::Kubernetes {
                    plane: Plane::Shared(cp),
                    client,
                })
            }
        }
    }

    /// Which kind of server this is (an existing cluster counts as Kubernetes).
    pub fn server(&self) -> Server {
        match self {
            Target::Local(_) => Server::TestCluster,
            _ => Server::Kubernetes,
        }
    }

    /// An admin client (the kubeconfig's user on a real cluster).
    pub fn client(&self) -> kube::Client {
        match self {
            Target::Local(c) => c.client(),
            Target::Kubernetes { client, .. } | Target::Real { client, .. } => client.clone(),
        }
    }

    /// The kubeconfig for kubectl and the binaries under test.
    pub fn kubeconfig_path(&self) -> PathBuf {
        match self {
            Target::Local(c) => c.kubeconfig_path().to_path_buf(),
            Target::Kubernetes { plane, .. } => plane.kubeconfig_path(),
            Target::Real { kubeconfig, .. } => kubeconfig.clone(),
        }
    }

    /// The API server URL; `None` for an existing cluster.
    pub fn url(&self) -> Option<&str> {
        match self {
            Target::Local(c) => Some(c.url()),
            Target::Kubernetes { plane, .. } => Some(plane.url()),
            Target::Real { .. } => None,
        }
    }

    /// The CA certificate (PEM) when known.
    pub fn ca_pem(&self) -> Option<&str> {
        match self {
            Target::Local(c) => c.ca_pem(),
            Target::Kubernetes { plane, .. } => Some(plane.ca_pem()),
            Target::Real { .. } => None,
        }
    }

    /// A token for a ServiceAccount (created if missing): the TokenRequest API on a real
    /// control plane, the test server's own issuer on kage-testcluster.
    pub async fn service_account_token(&self, namespace: &str, name: &str) -> Result<String> {
        match self {
            Target::Local(c) => c.service_account_token(namespace, name),
            Target::Kubernetes { plane, .. } => plane.service_account_token(namespace, name).await,
            Target::Real { .. } => anyhow::bail!("no token issuer for an existing cluster"),
        }
    }

    /// A kubeconfig at `path` for this server authenticating with `token`.
    pub fn write_token_kubeconfig(&self, path: &Path, token: &str) -> Result<()> {
        let url = self.url().context("the server URL is unknown")?;
        crate::cluster::write_kubeconfig(path, url, self.ca_pem(), token)
    }

    /// A client for this server authenticating with `token` (subject to RBAC).
    pub fn client_for_token(&self, token: &str) -> Result<kube::Client> {
        match self {
            Target::Local(c) => c.try_client_for_token(token),
            Target::Kubernetes { plane, .. } => {
                kube::Client::try_from(plane.kube_config(token)?).context("building the client")
            }
            Target::Real { .. } => anyhow::bail!("no token clients for an existing cluster"),
        }
    }

    /// The test cluster, for test-only features (faults, compaction, upstreams); `None` on
    /// a real cluster.
    pub fn test_cluster(&self) -> Option<&TestCluster> {
        match self {
            Target::Local(c) => Some(c),
            _ => None,
        }
    }

    /// The real control plane, `None` on the test server.
    pub fn control_plane(&self) -> Option<&ControlPlane> {
        match self {
            Target::Kubernetes { plane, .. } => Some(plane),
            _ => None,
        }
    }
}
