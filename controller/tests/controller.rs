//! Integration tests of kage-controller (the one test binary, house style rule 15).
//!
//! Generated artefacts, the command line, the deploy manifests, and end-to-end runs of the real
//! binary against `kage-testcluster` as its ServiceAccount. Reconcile scenarios against a mock API
//! server are unit tests in `src/reconcile_tests.rs`.

mod artefacts;
mod cli;
mod deploy;
mod e2e;
mod e2e_rules;
mod hostnet;
