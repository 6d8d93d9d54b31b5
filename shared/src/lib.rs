//! kage-core: age keys, sealed values, the SOPS engine and the AgeSecret API types.
//!
//! Pure library: no async runtime, no Kubernetes client, no command-line parsing, no file I/O.

#[cfg(feature = "k8s")]
pub mod api;
