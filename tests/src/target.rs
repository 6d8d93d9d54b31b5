//! Where an end-to-end suite runs: this crate's in-memory server by default, or a real
//! cluster when `KAGE_E2E_KUBECONFIG` names a kubeconfig.

use crate::cluster::TestCluster;
use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};

/// The environment variable that points the end-to-end suites at a real cluster.
pub const E2E_KUBECONFIG: &str = "KAGE_E2E_KUBECONFIG";

/// The cluster an end-to-end test talks to.
pub enum Target {
    /// This crate's server, started for the test.
    Local(TestCluster),
    /// A real cluster from `KAGE_E2E_KUBECONFIG`.
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

    /// An admin client (the kubeconfig's user on a real cluster).
    pub fn client(&self) -> kube::Client {
        match self {
            Target::Local(c) => c.client(),
            Target::Real { client, .. } => client.clone(),
        }
    }

    /// The kubeconfig for kubectl and the binaries under test.
    pub fn kubeconfig_path(&self) -> &Path {
        match self {
            Target::Local(c) => c.kubeconfig_path(),
            Target::Real { kubeconfig, .. } => kubeconfig,
        }
    }

    /// The test cluster, for test-only features (faults, compaction, upstreams); `None` on
    /// a real cluster, where such tests should skip themselves.
    pub fn test_cluster(&self) -> Option<&TestCluster> {
        match self {
            Target::Local(c) => Some(c),
            Target::Real { .. } => None,
        }
    }
}
