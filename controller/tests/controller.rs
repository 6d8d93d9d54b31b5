//! Integration tests of kage-controller (the one test binary, house style rule 15).
//!
//! Generated artefacts, the command line, and the deploy manifests. Reconcile scenarios against
//! a mock API server are unit tests in `src/reconcile_tests.rs`; end-to-end tests against the
//! project's Kubernetes API test server come with `kage-testcluster`.

mod artefacts;
mod deploy;
