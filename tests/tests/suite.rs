//! The crate's one integration-test binary: kube-rs against the in-process server, raw
//! HTTP semantics, the real kubectl against the binary, and deploy/, examples/ and the docs
//! checked with the real tools (`deploy.rs`: Argo CD health check, overlays, documented
//! commands, `scripts/demo.sh`).

mod common;
mod controller;
mod deploy;
mod fidelity;
mod http_api;
mod kube_api;
mod kubectl;
