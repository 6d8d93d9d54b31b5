//! The one integration-test binary of the `kage` CLI.
//!
//! - `snapshots`: trycmd cases under `tests/cmd/` (help texts and user-facing errors);
//!   rebless with `TRYCMD=overwrite cargo test -p kage --test cli snapshots`.
//! - the other modules drive the binary through [`harness`] (ripgrep-style `Dir`/`TestCommand`),
//!   against the real `age`, `age-keygen`, `sops` and `kubectl` where a test says so. Those tools
//!   are found through `KAGE_TEST_AGE`, `KAGE_TEST_SOPS`, `KAGE_TEST_KUBECTL` or the PATH; a missing
//!   tool fails the test (`source scripts/tools.sh` installs them).

#[path = "cli/harness.rs"]
mod harness;

#[path = "cli/cluster.rs"]
mod cluster;
#[path = "cli/config.rs"]
mod config;
#[path = "cli/edit.rs"]
mod edit;
#[path = "cli/errors.rs"]
mod errors;
#[path = "cli/hostile.rs"]
mod hostile;
#[path = "cli/interop.rs"]
mod interop;
#[path = "cli/keygen.rs"]
mod keygen;
#[path = "cli/outputs.rs"]
mod outputs;
#[path = "cli/roundtrip.rs"]
mod roundtrip;
#[path = "cli/set.rs"]
mod set;
#[path = "cli/snapshots.rs"]
mod snapshots;
