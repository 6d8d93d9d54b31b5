//! The one integration-test binary of kage-core: golden vectors, the real `sops` and `age`,
//! property tests and bad input.

mod common;
mod interop;
mod negative;
mod props;
mod golden;
