//! The one integration-test binary of kage-core: golden vectors, the real `sops` and `age`,
//! property tests and bad input.

mod common;
pub mod golden;
mod interop;
mod negative;
mod props;
