//! kage-core: age keys, sealed values, the SOPS engine and the AgeSecret API types.
//!
//! Pure library: no async runtime, no Kubernetes client, no command-line parsing, no file I/O.
#![deny(missing_docs)]

#[cfg(feature = "k8s")]
pub mod api;
mod error;
pub mod k8s;
pub mod keys;
pub mod keysecret;
pub mod limits;
pub mod sealed;

pub use error::{Error, ErrorKind, Result};
pub mod document;
pub mod sops;
