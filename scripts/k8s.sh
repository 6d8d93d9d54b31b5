#!/usr/bin/env bash
# A real Kubernetes control plane for kage's tests and demo: etcd, kube-apiserver and
# kube-controller-manager built from the Go module tests/k8s (docs/testcluster.md, "Real control plane").
#
#   scripts/k8s.sh bin         build the binaries if missing and print their directory
#                              (${XDG_CACHE_HOME:-$HOME/.cache}/kage-k8s/<version>/bin)
#   scripts/k8s.sh start DIR   certificates, etcd, kube-apiserver, kube-controller-manager on free
#                              loopback ports; writes DIR/kubeconfig (cluster-admin), DIR/pids, DIR/logs/
#   scripts/k8s.sh stop DIR    stop exactly the processes DIR/pids names and wait for them
#
# The binaries are the `tool` lines of tests/k8s/go.mod and of any tests/k8s/*/go.mod (adding one is that
# one line plus `go mod tidy`; a tool family whose requirements clash gets its own module there);
# the Kubernetes version is its k8s.io/kubernetes requirement. Any failure names the step, prints the last
# lines of its log and exits non-zero; nothing here ever falls back to kage-testcluster.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mod="$root/tests/k8s"
go_cmd="${GO:-go}"
command -v "$go_cmd" >/dev/null 2>&1 || go_cmd=/usr/local/go/bin/go

die() { # step log-file message...
  local step="$1" log="$2"
  shift 2
  echo "k8s.sh: $step failed: $*" >&2
  if [ -n "$log" ] && [ -s "$log" ]; then
    echo "--- last lines of $log:" >&2
    tail -n 25 "$log" >&2
  fi
  exit 1
}

version() {
  awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v[0-9]/ { print $2; exit }' "$mod/go.mod"
}

# tests/k8s and every module below it (a tool family whose requirements clash with Kubernetes' gets its
# own go.mod there, e.g. tests/k8s/helm/go.mod).
modules() {
  echo "$mod"
  local f
  for f in "$mod"/*/go.mod; do
    [ -f "$f" ] && dirname "$f"
  done
}

# Build every tool of those modules into the cache (once per go.mod/go.sum content), print the dir.
cmd_bin() {
  local v cache bin stamp want tools log tmp
  v="$(version)"
  [ -n "$v" ] || die "reading the Kubernetes version" "" "no k8s.io/kubernetes requirement in $mod/go.mod"
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/kage-k8s/$v"
  bin="$cache/bin"
  stamp="$bin/.inputs"
  # Rebuilt when the module's requirements or the Go toolchain change.
  want="$( (for m in $(modules); do cat "$m/go.mod" "$m/go.sum"; done; "$go_cmd" version) | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "$bin"
    return
  fi
  mkdir -p "$cache"
  # One build at a time per version (parallel test binaries may all ask).
  exec 9>"$cache/.lock"
  flock 9
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "$bin"
    return
  fi
  log="$cache/build.log"
  : >"$log"
  local minor="${v#v1.}"
  minor="${minor%%.*}"
  local kv=k8s.io/component-base/version
  local ldflags="-s -w -X $kv.gitVersion=$v -X $kv.gitMajor=1 -X $kv.gitMinor=$minor -X $kv.gitTreeState=clean"
  ldflags+=" -X $kv.gitCommit=unknown -X $kv.buildDate=1970-01-01T00:00:00Z"
  tmp="$cache/bin.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  local m
  for m in $(modules); do
    tools="$(cd "$m" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly "$go_cmd" list -f '{{.ImportPath}}' tool 2>>"$log")" ||
      { rm -rf "$tmp"; die "listing the tools of ${m#"$root"/}/go.mod" "$log" "go list tool"; }
    echo "k8s.sh: building $(echo $tools) from ${m#"$root"/} (Kubernetes $v) into $bin; a cold build takes minutes" >&2
    # Static, like upstream's release binaries; GOTOOLCHAIN=local: a module needing a newer Go fails here
    # instead of fetching a toolchain. GOCACHE/GOMODCACHE stay Go's defaults so every run reuses them.
    # shellcheck disable=SC2086
    (cd "$m" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly \
      "$go_cmd" build -trimpath -ldflags "$ldflags" -o "$tmp/" $tools) >>"$log" 2>&1 ||
      { rm -rf "$tmp"; die "go build (${m#"$root"/})" "$log" "see $log"; }
  done
  rm -rf "$bin"
  mv "$tmp" "$bin"
  echo "$want" >"$stamp"
  echo "$bin"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

running_pids() { # DIR: pids from DIR/pids that are still this cluster's processes
  local dir="$1" name pid
  [ -f "$dir/pids" ] || return 0
  while read -r name pid; do
    # The command line names DIR: a recycled pid of some other process is never touched.
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/"; then
      echo "$name $pid"
    fi
  done <"$dir/pids"
}

certs() { # PKI-DIR
  local pki="$1"
  mkdir -p "$pki"
  (
    cd "$pki"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=kage-k8s-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    sign() { # name subject extra-extensions
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
      printf '%b' "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA "${4:-ca}.crt" -CAkey "${4:-ca}.key" -CAcreateserial -days 3650 \
        -out "$1.crt" -extfile "$1.ext"
    }
    sign apiserver "/CN=kube-apiserver" \
      "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.0.0.1\n"
    # O=system:masters: the admin bypasses RBAC, like kubeadm's admin.conf.
    sign admin "/CN=kage-admin/O=system:masters" "extendedKeyUsage=clientAuth\n"
    # The bootstrap RBAC policy binds this user name.
    sign kcm "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth\n"
    # Front proxy (aggregation layer): its own CA, as upstream requires.
    openssl req -x509 -newkey rsa:2048 -nodes -keyout front-proxy-ca.key -out front-proxy-ca.crt -days 3650 \
      -subj "/CN=kage-k8s-front-proxy-ca" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign"
    sign front-proxy-client "/CN=front-proxy-client" "extendedKeyUsage=clientAuth\n" front-proxy-ca
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    rm -f ./*.csr ./*.ext ./*.srl
  ) >"$pki/openssl.log" 2>&1
}

kubeconfig() { # FILE PORT PKI USER
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kage-k8s
  cluster:
    server: https://127.0.0.1:$2
    certificate-authority: $3/ca.crt
users:
- name: $4
  user:
    client-certificate: $3/$4.crt
    client-key: $3/$4.key
contexts:
- name: kage-k8s
  context:
    cluster: kage-k8s
    user: $4
    namespace: default
current-context: kage-k8s
EOF
}

wait_for() { # step log seconds pid command...
  local step="$1" log="$2" secs="$3" pid="$4"
  shift 4
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || fail_start "$step" "$log" "the process exited"
    [ $SECONDS -lt $deadline ] || fail_start "$step" "$log" "not ready after ${secs}s"
    sleep 0.2
  done
}

fail_start() { # step log message: stop what was started, then fail
  stop_dir "$dir" >/dev/null 2>&1 || true
  die "$@"
}

cmd_start() {
  dir="$1"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if [ -n "$(running_pids "$dir")" ]; then
    echo "k8s.sh: $dir is already running a control plane (pids in $dir/pids); run \`scripts/k8s.sh stop $dir\` first" >&2
    exit 1
  fi
  local bin
  bin="$(cmd_bin)" || exit 1
  local pki="$dir/pki" logs="$dir/logs"
  rm -rf "$pki" "$dir/etcd" "$logs" "$dir/pids" "$dir/kubeconfig"
  mkdir -p "$logs"
  certs "$pki" || die "making certificates (openssl)" "$pki/openssl.log" "openssl"
  : >"$dir/pids"

  local etcd_port peer_port api_port
  etcd_port="$(free_port)"
  peer_port="$(free_port)"
  api_port="$(free_port)"

  # etcd: loopback only, no fsync (test data).
  setsid "$bin/etcd" --name=default --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="default=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync --log-level=warn </dev/null >"$logs/etcd.log" 2>&1 &
  local etcd_pid=$!
  echo "etcd $etcd_pid" >>"$dir/pids"
  wait_for "starting etcd" "$logs/etcd.log" 30 "$etcd_pid" curl -fsS "http://127.0.0.1:$etcd_port/health"

  # kube-apiserver: secure port on 127.0.0.1 only; Node and RBAC authorization; the default admission
  # plugins; service-account tokens signed with sa.key. No endpoint reconciler: the apiserver's own
  # address is loopback, which Endpoints refuse.
  setsid "$bin/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --secure-port="$api_port" --advertise-address=127.0.0.1 \
    --endpoint-reconciler-type=none \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --authorization-mode=Node,RBAC \
    --allow-privileged=true \
    --requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$pki/front-proxy-client.crt" --proxy-client-key-file="$pki/front-proxy-client.key" \
    --enable-aggregator-routing=true \
    --profiling=false --v=1 </dev/null >"$logs/kube-apiserver.log" 2>&1 &
  local api_pid=$!
  echo "kube-apiserver $api_pid" >>"$dir/pids"
  kubeconfig "$dir/kubeconfig" "$api_port" "$pki" admin
  kubeconfig "$dir/kcm.kubeconfig" "$api_port" "$pki" kcm
  wait_for "starting kube-apiserver" "$logs/kube-apiserver.log" 90 "$api_pid" \
    curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://127.0.0.1:$api_port/readyz"

  # kube-controller-manager: every controller (also the ones off by default); no HTTPS port of its own.
  setsid "$bin/kube-controller-manager" --kubeconfig="$dir/kcm.kubeconfig" \
    --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --controllers='*,bootstrap-signer-controller,token-cleaner-controller' \
    --bind-address=127.0.0.1 --secure-port=0 --v=1 </dev/null >"$logs/kube-controller-manager.log" 2>&1 &
  local kcm_pid=$!
  echo "kube-controller-manager $kcm_pid" >>"$dir/pids"
  # Ready when its serviceaccount controller has made default/default (the admission plugin needs it).
  wait_for "starting kube-controller-manager" "$logs/kube-controller-manager.log" 90 "$kcm_pid" \
    curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://127.0.0.1:$api_port/api/v1/namespaces/default/serviceaccounts/default"
  echo "k8s.sh: control plane up at https://127.0.0.1:$api_port (kubeconfig $dir/kubeconfig)" >&2
}

stop_dir() { # DIR: TERM in reverse start order, wait, KILL what hangs
  local dir="$1" list name pid
  list="$(running_pids "$dir" | tac)"
  [ -n "$list" ] || { rm -f "$dir/pids"; return 0; }
  while read -r name pid; do
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "k8s.sh: $name ($pid) ignored SIGTERM for 20s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
  done <<<"$list"
  rm -f "$dir/pids"
}

cmd_stop() {
  local dir
  [ -d "$1" ] || { echo "k8s.sh: $1: no such directory" >&2; exit 1; }
  dir="$(cd "$1" && pwd)"
  [ -f "$dir/pids" ] || { echo "k8s.sh: $dir/pids: no control plane was started there" >&2; exit 1; }
  stop_dir "$dir"
}

usage() {
  echo "usage: scripts/k8s.sh bin | start DIR | stop DIR" >&2
  exit 2
}

case "${1:-}" in
  bin) [ $# -eq 1 ] || usage; cmd_bin ;;
  start) [ $# -eq 2 ] || usage; cmd_start "$2" ;;
  stop) [ $# -eq 2 ] || usage; cmd_stop "$2" ;;
  *) usage ;;
esac
