#!/usr/bin/env bash
# Load benchmark of kage-testcluster: N Secrets created through kube-rs, listed in pages
# of 500, a watcher that must see every event, and the server's RSS.
# Usage: tests/bench/testcluster.sh [N]   (default 10000; 2 build jobs, as on CI machines)
set -euo pipefail
cd "$(dirname "$0")/../.."
export KAGE_BENCH_SECRETS="${1:-10000}"
exec cargo bench -j2 -p kage-testcluster --bench testcluster
