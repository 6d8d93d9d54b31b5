#!/usr/bin/env bash
# kage-controller cold start against kage-testcluster, all release builds, as separate processes:
#
#   N AgeSecrets × 3 sealed values exist before the controller starts; the time from its start
#   until its own gauge reports all N Ready (it counts what it wrote into status), its CPU time
#   (user + system, from /proc), the time its reconciles spent decrypting (the
#   kage_decrypt_seconds_total and kage_values_decrypted_total counters: values per second on
#   one core, since one reconcile decrypts on one thread), its RSS, and the RSS after UNRELATED
#   Secrets it does not manage are added.
#
# Environment: N (default 3000), CONCURRENCY (default: the controller's default), UNRELATED
# (default 10000), RUNS (default 3), KAGE_BIN_DIR (release binaries; built when unset).
# Output: one markdown table on stdout (and bench/results/controller.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
N="${N:-3000}"
UNRELATED="${UNRELATED:-10000}"
RUNS="${RUNS:-3}"
if [ -n "${KAGE_BIN_DIR:-}" ]; then
  bin="$KAGE_BIN_DIR"
else
  cargo build -q --release -j2 -p kage -p kage-controller -p kage-testcluster
  bin="$root/target/release"
fi
kubectl="${KUBECTL:-kubectl}"
tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

k() { "$kubectl" --kubeconfig "$tmp/admin.kubeconfig" "$@"; }
wait_for() { # seconds, command…
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.1
  done
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_seconds() { # utime + stime of a pid, in seconds
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"
}
rss_mib() { awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

# One test cluster with the CRD and deploy/base (minus the Deployment: no pods run here).
"$bin/kage-testcluster" --listen 127.0.0.1:0 --kubeconfig "$tmp/admin.kubeconfig" \
  >"$tmp/url" 2>"$tmp/testcluster.log" &
server_pid=$!
pids+=("$server_pid")
wait_for 20 test -s "$tmp/url"
"$kubectl" kustomize deploy/base |
  awk 'BEGIN { RS = "\n---\n"; ORS = "\n---\n" } !/\nkind: Deployment\n/' >"$tmp/base.yaml"
k apply -f "$tmp/base.yaml" >/dev/null
k create namespace load >/dev/null

# The controller's kubeconfig: its ServiceAccount token (the RBAC of deploy/base).
token="$(k -n kage-system create token kage-controller --duration 2h)"
k config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$tmp/ca.crt"
kc="$tmp/controller.kubeconfig"
"$kubectl" config --kubeconfig "$kc" set-cluster c --server "$(cat "$tmp/url")" \
  --certificate-authority "$tmp/ca.crt" --embed-certs >/dev/null
"$kubectl" config --kubeconfig "$kc" set-credentials sa --token "$token" >/dev/null
"$kubectl" config --kubeconfig "$kc" set-context c --cluster c --user sa >/dev/null
"$kubectl" config --kubeconfig "$kc" use-context c >/dev/null

metrics_port="$(free_port)"
start_controller() {
  local extra=()
  [ -n "${CONCURRENCY:-}" ] && extra+=(--concurrency "$CONCURRENCY")
  KUBECONFIG="$kc" RUST_LOG=warn "$bin/kage-controller" --namespace kage-system \
    --http-addr "127.0.0.1:$(free_port)" --metrics-addr "127.0.0.1:$metrics_port" \
    "${extra[@]}" 2>>"$tmp/controller.log" &
  controller_pid=$!
}
stop_controller() {
  kill -TERM "$controller_pid"
  wait "$controller_pid" || true
}

# First start: the key.
start_controller
wait_for 30 k -n kage-system get configmap kage-public-keys
recipient="$(k -n kage-system get configmap kage-public-keys -o jsonpath='{.data.recipients\.txt}' | grep -m1 '^age1')"
stop_controller

# Three values sealed with namespace scope (valid for any name in namespace load), N objects.
"$bin/kage" seal --scope namespace -n load --name s -r "$recipient" \
  --from-literal a="value-a-$(printf 'x%.0s' {1..32})" \
  --from-literal b="value-b-$(printf 'y%.0s' {1..32})" \
  --from-literal c="value-c-$(printf 'z%.0s' {1..32})" -o "$tmp/one.yaml"
for i in $(seq 1 "$N"); do
  sed "s/^  name: s$/  name: s$i/" "$tmp/one.yaml"
  echo ---
done >"$tmp/all.yaml"
count() { k -n load get "$1" -o name 2>/dev/null | wc -l; }
nothing_left() { [ "$(count agesecrets)" = 0 ] && [ "$(count secrets)" = 0 ]; }

ready_count() {
  curl -s "http://127.0.0.1:$metrics_port/metrics" |
    awk '/^kage_agesecrets\{ready="True"\}/ { print $2 }'
}
rows=()
for run in $(seq 1 "$RUNS"); do
  # A cold start every run: the objects are created afresh while no controller runs (deleting
  # the AgeSecrets garbage-collects their Secrets).
  k -n load delete agesecrets --all --wait=false >/dev/null
  wait_for 120 nothing_left || { echo "objects of the previous run still there" >&2; exit 1; }
  echo "run $run: creating $N AgeSecrets with kubectl create..." >&2
  k create -f "$tmp/all.yaml" >/dev/null
  server_cpu0="$(cpu_seconds "$server_pid")"
  t0="$(date +%s.%N)"
  start_controller
  until [ "$(ready_count)" = "$N" ]; do
    sleep 0.05
    if [ "$(echo "$(date +%s.%N) - $t0 > 300" | bc)" = 1 ]; then
      echo "not all Ready after 300 s" >&2
      exit 1
    fi
  done
  t1="$(date +%s.%N)"
  wall="$(echo "$t1 - $t0" | bc)"
  cpu="$(cpu_seconds "$controller_pid")"
  server_cpu="$(echo "$(cpu_seconds "$server_pid") - $server_cpu0" | bc)"
  rss="$(rss_mib "$controller_pid")"
  metrics="$(curl -s "http://127.0.0.1:$metrics_port/metrics")"
  decrypt_s="$(awk '/^kage_decrypt_seconds_total / { print $2 }' <<<"$metrics")"
  values="$(awk '/^kage_values_decrypted_total / { print $2 }' <<<"$metrics")"
  rate="$(echo "$values / $decrypt_s" | bc)"
  rows+=("| $run | $(printf '%.2f' "$wall") s | $cpu s | $(printf '%.2f' "$decrypt_s") s for $values values ($rate/s) | $server_cpu s | $rss MiB |")
  echo "run $run: all $N Ready in $wall s, controller CPU $cpu s (decrypting $decrypt_s s for $values values), server CPU $server_cpu s, RSS $rss MiB" >&2
  # Spot check: a Secret holds the sealed value.
  [ "$(k -n load get secret "s$N" -o jsonpath='{.data.a}' | base64 -d | cut -c1-8)" = value-a- ] ||
    { echo "secret s$N does not hold its value" >&2; exit 1; }
  [ "$run" = "$RUNS" ] || stop_controller
done

unrelated_rss=""
if [ "$UNRELATED" -gt 0 ]; then
  rss_before="$(rss_mib "$controller_pid")"
  k create namespace other >/dev/null
  for i in $(seq 1 "$UNRELATED"); do
    printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: u%d\n  namespace: other\ndata:\n  k: dW5yZWxhdGVk\n---\n' "$i"
  done >"$tmp/unrelated.yaml"
  echo "creating $UNRELATED unrelated Secrets..." >&2
  k create -f "$tmp/unrelated.yaml" >/dev/null
  sleep 3
  unrelated_rss="controller RSS with $N AgeSecrets: $rss_before MiB; after $UNRELATED unrelated Secrets: $(rss_mib "$controller_pid") MiB"
fi
stop_controller

mkdir -p bench/results
{
  echo "Cold start: $N AgeSecrets × 3 values, release kage-controller and kage-testcluster, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "| run | all Ready | controller CPU | decrypting (kage_decrypt_seconds_total) | server CPU | controller RSS |"
  echo "| --- | --- | --- | --- | --- | --- |"
  printf '%s\n' "${rows[@]}"
  [ -z "$unrelated_rss" ] || { echo; echo "$unrelated_rss"; }
} | tee bench/results/controller.md
