#!/usr/bin/env bash
# Runs every check CI runs: installs the real tools the interop tests use, then formatting, clippy,
# and all tests of the workspace. Interop tests never skip: a missing tool is an error.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/tools.sh
echo "sops: $KAGE_TEST_SOPS ($("$KAGE_TEST_SOPS" --version --check-for-updates=false 2>/dev/null | head -n1 || true))"
echo "age: $KAGE_TEST_AGE ($(age --version))"
echo "kubectl: $KAGE_TEST_KUBECTL"
# The real control plane (etcd, kube-apiserver, kube-controller-manager from tests/k8s) is built
# here, once, so no test waits for a Go build; the suites start it through scripts/k8s.sh.
KAGE_K8S_BIN="$(scripts/k8s.sh bin)"
export KAGE_K8S_BIN
echo "kubernetes: $("$KAGE_K8S_BIN/kube-apiserver" --version) in $KAGE_K8S_BIN"

export CARGO_TERM_COLOR=never
jobs="${CARGO_BUILD_JOBS:-2}"
cargo fmt --all -- --check
cargo deny check bans licenses
cargo clippy -j"$jobs" --workspace --all-targets -- -D warnings
cargo test -j"$jobs" --workspace --all-targets
cargo test -j"$jobs" --workspace --doc
# A short bounded run of every fuzz target (seeded from the test vectors; scripts/fuzz.sh).
FUZZ_SECONDS="${FUZZ_SECONDS:-20}" scripts/fuzz.sh
