//! The crate's one integration-test binary: kube-rs against the in-process server, raw
//! HTTP semantics, and the real kubectl against the binary.

mod common;
mod controller;
mod deploy;
mod http_api;
mod kube_api;
mod kubectl;
