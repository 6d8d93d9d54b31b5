//! `kage-testcluster`: an in-memory Kubernetes API server, a test double for kage's
//! end-to-end tests, the CLI's cluster commands and the demo. See `docs/testcluster.md`
//! for what it implements and what it does not.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let cluster = kage_testcluster::TestCluster::start().await?;
//! let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
//!     kube::Api::namespaced(cluster.client(), "default");
//! let _ = secrets.list(&Default::default()).await?;
//! # Ok(()) }
//! ```

pub mod cluster;
pub mod error;
pub mod faults;
pub mod patch;
pub mod proto;
pub mod rbac;
pub mod real;
pub mod registry;
pub mod schema;
pub mod selector;
pub mod server;
pub mod ssa;
pub mod store;
pub mod target;
pub mod tls;
pub mod validate;

pub use cluster::{Options, TestCluster};
pub use error::{Error, Result};
pub use faults::{Faults, Matcher};
pub use real::ControlPlane;
pub use server::UPSTREAM_ANNOTATION;
pub use target::{E2E_KUBECONFIG, Plane, Server, Target};
