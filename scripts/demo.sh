#!/usr/bin/env bash
# kage end to end, on this machine, in about ten seconds after the build:
#
#   two in-memory test clusters (staging and prod, `kage-testcluster`) as two contexts of one
#   kubeconfig, kage installed into each from `kubectl kustomize deploy/overlays/...`,
#   kage-controller running as a local process authenticated with its ServiceAccount token, each
#   cluster's public key fetched into .kage.yaml (`kage keys fetch --write-env`), the
#   examples/gitops repository sealed (`kage seal`) and applied with
#   `kubectl kustomize | kubectl apply`, the resulting Secrets checked, the prod manifest refused by
#   staging (`kage validate --cluster`, and applied anyway), prod's key rotated
#   (`kage keys rotate`) and the manifests re-encrypted through prod's controller
#   (`kage reencrypt`), and a break-glass recovery offline (`kage unseal`).
#
# The kage cluster commands find their cluster through the environment's `cluster:` in .kage.yaml
# (context and controller namespace) or `--context`; kubectl is used to install, apply, wait and
# check what the commands did.
#
# Every step is verified; the script exits non-zero at the first step that does not check out.
# It cleans up after itself (processes and temporary files), also on failure or Ctrl-C.
#
# `--real` runs the same story on two real control planes (etcd, kube-apiserver and
# kube-controller-manager from tests/k8s, started by scripts/k8s.sh; needs root for the network
# namespaces the service proxy reaches the controllers through); the default stays on the
# in-memory server (seconds).
#
# Environment:
#   KAGE_BIN_DIR   use the kage, kage-controller and kage-testcluster binaries in this directory
#                  instead of building them (the end-to-end test passes its own build)
#   KUBECTL        the kubectl to use (default: kubectl on the PATH)
#   KAGE_DEMO_KEEP=1  keep the temporary directory (logs, kubeconfigs, the sealed repository)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
real=0
case "${1:-}" in
--real) real=1 ;;
"") ;;
*)
  echo "usage: scripts/demo.sh [--real]" >&2
  exit 2
  ;;
esac

# ---------------------------------------------------------------------------------------------
# Output helpers: plain words, one line per action, `ok` once it was checked.
step_no=0
step() {
  step_no=$((step_no + 1))
  printf '\n==> %d. %s\n' "$step_no" "$*"
}
say() { printf '    %s\n' "$*"; }
ok() { printf '    ok: %s\n' "$*"; }
fail() {
  printf '\nFAILED at step %d: %s\n' "$step_no" "$*" >&2
  exit 1
}

# ---------------------------------------------------------------------------------------------
# Cleanup of everything this script starts.
pids=()
planes=()
netns=()
tmp=""
cleanup() {
  local status=$?
  set +e
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null
  done
  for d in "${planes[@]}"; do
    scripts/k8s.sh stop "$d" >/dev/null 2>&1
  done
  for n in "${netns[@]}"; do
    ip netns del "$n" 2>/dev/null
  done
  if [ -n "$tmp" ] && [ -d "$tmp" ]; then
    if [ "${KAGE_DEMO_KEEP:-}" = 1 ]; then
      echo "kept $tmp"
    else
      rm -rf "$tmp"
    fi
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'echo "interrupted: cleaning up" >&2; exit 130' INT
trap 'echo "terminated: cleaning up" >&2; exit 143' TERM

# ---------------------------------------------------------------------------------------------
step "Build what the demo needs"
if [ -n "${KAGE_BIN_DIR:-}" ]; then
  bin="$(cd "$KAGE_BIN_DIR" && pwd)"
  say "using the binaries in $bin (KAGE_BIN_DIR)"
else
  command -v cargo >/dev/null 2>&1 || fail "cargo not found: install the Rust toolchain (https://rustup.rs)"
  say "cargo build --release -p kage -p kage-controller -p kage-testcluster (a few minutes the first time)"
  cargo build --release -j"${CARGO_BUILD_JOBS:-2}" -p kage -p kage-controller -p kage-testcluster
  bin="${CARGO_TARGET_DIR:-$root/target}/release"
fi
for b in kage kage-controller kage-testcluster; do
  [ -x "$bin/$b" ] || fail "$bin/$b is missing"
done
kubectl_bin="${KUBECTL:-kubectl}"
command -v "$kubectl_bin" >/dev/null 2>&1 || fail "kubectl not found: install kubectl (v1.32) on the PATH, or set KUBECTL"
kubectl() { command "$kubectl_bin" "$@"; }
command -v base64 >/dev/null 2>&1 || fail "base64 not found (coreutils)"
ok "kage, kage-controller, kage-testcluster and kubectl are there"
started_at=$SECONDS

tmp="$(mktemp -d "${TMPDIR:-/tmp}/kage-demo.XXXXXX")"
# One kubeconfig with a context per cluster (`staging`, `prod`), as a team would have. It has no
# current context: every command names its cluster (`--context`, or .kage.yaml's `cluster:`).
kubeconfig="$tmp/kubeconfig"
kage() { KUBECONFIG="$kubeconfig" "$bin/kage" "$@"; }

# A free local TCP port (nothing answers on it now).
free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

# Wait until "$@" succeeds (quietly), at most $timeout seconds.
wait_for() {
  local timeout=$1
  shift
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

# kubectl as the admin of cluster $1 (context $1 of the shared kubeconfig).
k() {
  local env=$1
  shift
  kubectl --kubeconfig "$kubeconfig" --context "$env" "$@"
}

# Runs "$@" and prints its stdout and stderr indented, the command line first. Returns its exit
# code (callers check it).
show() {
  local rc=0
  say "\$ ${*}"
  "$@" >"$tmp/show.out" 2>"$tmp/show.err" || rc=$?
  sed 's/^/      /' "$tmp/show.err" "$tmp/show.out"
  return "$rc"
}

# The controller's HTTP API through the API server's service proxy, as the cluster admin.
proxy_path=/api/v1/namespaces/kage-system/services/kage-controller:http/proxy

# ---------------------------------------------------------------------------------------------
# One cluster: start the API server and add it to the shared kubeconfig as context $1, with the
# admin user the test server writes into its own kubeconfig.
start_cluster() {
  local env=$1
  mkdir -p "$tmp/$env"
  if [ "$real" = 1 ]; then
    planes+=("$tmp/$env/k8s")
    scripts/k8s.sh start "$tmp/$env/k8s" 2>"$tmp/$env/k8s.log" ||
      fail "the $env control plane did not start: $(cat "$tmp/$env/k8s.log")"
    local admin="$tmp/$env/k8s/kubeconfig" pki="$tmp/$env/k8s/pki"
    kubectl --kubeconfig "$admin" config view -o jsonpath='{.clusters[0].cluster.server}' >"$tmp/$env/url"
    cp "$pki/ca.crt" "$tmp/$env/ca.crt"
    kubectl config --kubeconfig "$kubeconfig" set-cluster "$env" --server "$(cat "$tmp/$env/url")" \
      --certificate-authority "$tmp/$env/ca.crt" --embed-certs >/dev/null
    kubectl config --kubeconfig "$kubeconfig" set-credentials "$env-admin" --embed-certs \
      --client-certificate "$pki/admin.crt" --client-key "$pki/admin.key" >/dev/null
    kubectl config --kubeconfig "$kubeconfig" set-context "$env" --cluster "$env" --user "$env-admin" >/dev/null
    k "$env" get --raw /readyz >/dev/null || fail "the $env API server does not answer"
    ok "$env: kube-apiserver $(k "$env" get --raw /version | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p') at $(cat "$tmp/$env/url"), context $env in $kubeconfig"
    return
  fi
  "$bin/kage-testcluster" --listen 127.0.0.1:0 --kubeconfig "$tmp/$env/admin.kubeconfig" \
    >"$tmp/$env/url" 2>"$tmp/$env/testcluster.log" &
  pids+=($!)
  wait_for 20 test -s "$tmp/$env/url" || fail "the $env test cluster did not start (see $tmp/$env/testcluster.log)"
  local admin="$tmp/$env/admin.kubeconfig" token
  kubectl --kubeconfig "$admin" config view --raw \
    -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$tmp/$env/ca.crt"
  token="$(kubectl --kubeconfig "$admin" config view --raw -o jsonpath='{.users[0].user.token}')"
  [ -s "$tmp/$env/ca.crt" ] && [ -n "$token" ] || fail "no CA or admin token in $admin"
  kubectl config --kubeconfig "$kubeconfig" set-cluster "$env" --server "$(cat "$tmp/$env/url")" \
    --certificate-authority "$tmp/$env/ca.crt" --embed-certs >/dev/null
  kubectl config --kubeconfig "$kubeconfig" set-credentials "$env-admin" --token "$token" >/dev/null
  kubectl config --kubeconfig "$kubeconfig" set-context "$env" --cluster "$env" --user "$env-admin" >/dev/null
  k "$env" get --raw /readyz >/dev/null || fail "the $env API server does not answer"
  ok "$env API server at $(cat "$tmp/$env/url"), context $env in $kubeconfig"
}

install_kage() {
  local env=$1 overlay=$2 namespaces=$3
  say "kubectl kustomize deploy/overlays/$overlay | kubectl apply -f -"
  kubectl kustomize "deploy/overlays/$overlay" >"$tmp/$env/kage.yaml"
  # The application namespace first: the single-namespace overlay binds RBAC inside it.
  for ns in $namespaces; do
    k "$env" create namespace "$ns" --save-config >/dev/null
  done
  k "$env" apply -f "$tmp/$env/kage.yaml" >"$tmp/$env/apply.log" || fail "kubectl apply of deploy/overlays/$overlay failed: $(cat "$tmp/$env/apply.log")"
  k "$env" get crd agesecrets.kage.dev >/dev/null || fail "the AgeSecret CRD is not installed"
  k "$env" auth can-i patch agesecrets.kage.dev --subresource=status -n shop \
    --as system:serviceaccount:kage-system:kage-controller >/dev/null ||
    fail "the controller's ServiceAccount may not write AgeSecret status in shop"
  if k "$env" auth can-i get secrets -n kage-system --as system:serviceaccount:shop:default >/dev/null 2>&1; then
    fail "an ordinary ServiceAccount may read Secrets in kage-system"
  fi
  ok "CRD, ServiceAccount and RBAC of deploy/overlays/$overlay installed ($(grep -c '^kind:' "$tmp/$env/kage.yaml") objects)"
}

run_controller() {
  local env=$1
  # The controller runs here as a process (the test server runs no pods), authenticated as its
  # ServiceAccount with a token from the TokenRequest API, exactly as a pod would be.
  local token server
  token="$(k "$env" -n kage-system create token kage-controller --duration 1h)"
  server="$(cat "$tmp/$env/url")"
  local kc="$tmp/$env/controller.kubeconfig"
  kubectl config --kubeconfig "$kc" set-cluster "$env" --server "$server" \
    --certificate-authority "$tmp/$env/ca.crt" --embed-certs >/dev/null
  kubectl config --kubeconfig "$kc" set-credentials kage-controller --token "$token" >/dev/null
  kubectl config --kubeconfig "$kc" set-context "$env" --cluster "$env" --user kage-controller >/dev/null
  kubectl config --kubeconfig "$kc" use-context "$env" >/dev/null
  kubectl --kubeconfig "$kc" auth whoami -o jsonpath='{.status.userInfo.username}' >"$tmp/$env/whoami"
  [ "$(cat "$tmp/$env/whoami")" = system:serviceaccount:kage-system:kage-controller ] ||
    fail "the controller's kubeconfig does not authenticate as its ServiceAccount"

  # The flags of the rendered Deployment, with local addresses instead of the pod's.
  local args=()
  while IFS= read -r arg; do
    case "$arg" in
    --http-addr=* | --metrics-addr=* | --log-format=* | "") ;;
    *) args+=("$arg") ;;
    esac
  done < <(k "$env" -n kage-system get deployment kage-controller \
    -o jsonpath='{range .spec.template.spec.containers[0].args[*]}{@}{"\n"}{end}')
  local http metrics host=127.0.0.1
  http="$(free_port)" || fail "no free local port"
  metrics="$(free_port)" || fail "no free local port"
  while [ "$metrics" = "$http" ]; do metrics="$(free_port)"; done
  if [ "$real" = 1 ]; then
    # kube-apiserver proxies to no loopback address: the controller listens on the host end of
    # a veth pair into a network namespace made for the demo.
    host_net "$env" || fail "no network namespace for $env (needs root and iproute2)"
    host="$net_ip"
  fi
  say "kage-controller ${args[*]} (as system:serviceaccount:kage-system:kage-controller, HTTP on $host:$http)"
  KUBECONFIG="$kc" POD_NAME="kage-controller-$env" RUST_LOG=info \
    "$bin/kage-controller" --namespace kage-system --http-addr "$host:$http" \
    --metrics-addr "127.0.0.1:$metrics" "${args[@]}" 2>"$tmp/$env/controller.log" &
  pids+=($!)
  if [ "$real" = 1 ]; then
    publish_pod "$env" "$host" "$http"
  else
    # The Service's endpoints: the test server's service proxy forwards to this address.
    k "$env" -n kage-system annotate service kage-controller --overwrite \
      "testcluster.kage.dev/upstream=127.0.0.1:$http" >/dev/null
  fi
  wait_for 30 k "$env" get --raw "$proxy_path/readyz" ||
    fail "kage-controller in $env is not ready (log: $tmp/$env/controller.log)"
  wait_for 15 k "$env" -n kage-system get configmap kage-public-keys ||
    fail "kage-controller in $env did not publish its public key"
  ok "kage-controller is ready and reachable through the service proxy; it generated its first key"
}

# A network namespace and veth pair for cluster $1; sets net_ip to the host end's address.
net_ip=""
host_net() {
  local env=$1 i=$((($$ + ${#netns[@]}) % 200))
  local ns="kage-demo-$env-$$" h="kgd${i}h" p="kgd${i}p" a="10.214.$i"
  ip netns add "$ns" || return 1
  netns+=("$ns")
  ip link add "$h" type veth peer name "$p" netns "$ns" &&
    ip addr add "$a.1/30" dev "$h" && ip link set "$h" up &&
    ip -n "$ns" addr add "$a.2/30" dev "$p" && ip -n "$ns" link set "$p" up || return 1
  net_ip="$a.1"
}

# A Pod object for the controller running here (it never runs in the cluster: no kubelet), Ready
# at that address, so kube-controller-manager's endpoints controller gives the Service endpoints
# with a targetRef to it, as the service proxy demands.
publish_pod() {
  local env=$1 ip=$2 port=$3 now
  now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  # The endpoints controllers skip Pods without a Node: a Node object that never reports status
  # (Pods are marked not ready only when a Ready Node stops being so). The Pod meets the
  # namespace's restricted Pod Security level.
  printf '%s\n' "apiVersion: v1" "kind: Node" "metadata: {name: kage-demo-host}" |
    k "$env" apply -f - >/dev/null || fail "creating a Node object in $env"
  printf '%s\n' "apiVersion: v1" "kind: Pod" "metadata:" "  name: kage-controller-$env" \
    "  labels: {app.kubernetes.io/name: kage-controller, app.kubernetes.io/part-of: kage}" "spec:" \
    "  nodeName: kage-demo-host" "  serviceAccountName: kage-controller" \
    "  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}" \
    "  containers: [{name: controller, image: kage-controller, ports: [{name: http, containerPort: $port}]," \
    "    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}]" |
    k "$env" -n kage-system apply -f - >/dev/null || fail "creating the controller's Pod object in $env"
  local ready="{\"type\":\"Ready\",\"status\":\"True\",\"lastTransitionTime\":\"$now\"}"
  local cready="{\"type\":\"ContainersReady\",\"status\":\"True\",\"lastTransitionTime\":\"$now\"}"
  k "$env" -n kage-system patch pod "kage-controller-$env" --subresource=status --type=merge -p \
    "{\"status\":{\"phase\":\"Running\",\"podIP\":\"$ip\",\"podIPs\":[{\"ip\":\"$ip\"}],\"conditions\":[$ready,$cready]}}" \
    >/dev/null || fail "setting the Pod's status in $env"
}

# The cluster's current (newest) recipient, as every authenticated user may read it.
current_recipient() {
  k "$1" -n kage-system get configmap kage-public-keys -o jsonpath='{.data.recipients\.txt}' |
    awk '/^age1/ && !found { print; found = 1 }'
}
current_kid() {
  k "$1" -n kage-system get configmap kage-public-keys -o jsonpath='{.data.recipients\.txt}' |
    awk '$1 == "#" && $2 == "kid:" && !found { print $3; found = 1 }'
}

# ---------------------------------------------------------------------------------------------
if [ "$real" = 1 ]; then
  step "Start two real control planes, staging and prod"
  say "etcd, kube-apiserver and kube-controller-manager built from tests/k8s (scripts/k8s.sh; no kubelet: no pods run)"
else
  step "Start two test clusters, staging and prod"
  say "kage-testcluster is kage's in-memory Kubernetes API server (a test double: no pods run)"
fi
start_cluster staging
start_cluster prod

step "Install kage into each cluster from deploy/"
say "staging: the single-namespace overlay (the controller may only touch namespace shop)"
install_kage staging single-namespace shop
say "prod: the ha overlay (3 replicas, PodDisruptionBudget, NetworkPolicy; stored, not run)"
install_kage prod ha shop

step "Run kage-controller for each cluster, with its ServiceAccount token"
run_controller staging
run_controller prod

# ---------------------------------------------------------------------------------------------
step "Fetch each cluster's public key into .kage.yaml (kage keys fetch --write-env)"
repo="$tmp/gitops"
cp -R examples/gitops "$repo"
say "working on a copy of examples/gitops in $repo; KUBECONFIG=$kubeconfig for every kage command"
say "the break-glass key is made here for the demo; a real team keeps it offline"
kage keygen -o "$tmp/break-glass.txt" 2>/dev/null
break_glass="$(sed -n 's/^# public key: //p' "$tmp/break-glass.txt")"
[ -n "$break_glass" ] || fail "kage keygen wrote no public key"
# Each environment names its cluster (a kubeconfig context and the controller's namespace); the
# recipients start empty and `kage keys fetch --write-env` fills them in from that cluster.
cat >"$repo/.kage.yaml" <<EOF
environments:
  - name: staging
    paths: ["overlays/staging/**"]
    recipients: []   # kage keys fetch --write-env staging
    extraRecipients: ["$break_glass"]
    scope: strict
    cluster: {context: staging, namespace: kage-system}
  - name: prod
    paths: ["overlays/prod/**"]
    recipients: []   # kage keys fetch --write-env prod
    extraRecipients: ["$break_glass"]
    scope: strict
    cluster: {context: prod, namespace: kage-system}
EOF
# Runs kage in the repository copy and shows the command and its output.
kr() { (cd "$repo" && show kage "$@"); }
kr keys fetch --write-env staging || fail "kage keys fetch --write-env staging failed"
kr keys fetch --write-env prod || fail "kage keys fetch --write-env prod failed"
kr keys list || fail "kage keys list failed"
# The environment's current kid as .kage.yaml now says (`kage keys list`).
listed_kid() {
  (cd "$repo" && kage keys list --env "$1") | awk -F '\t' '$3 == "current" { print $2 }'
}
listed_kid_extra() {
  (cd "$repo" && kage keys list --env "$1") | awk -F '\t' '$3 == "extra" { print $2 }'
}
# Checked against what each cluster publishes (ConfigMap kage-public-keys, read with kubectl).
for env in staging prod; do
  [ "$(listed_kid "$env")" = "$(current_kid "$env")" ] && [ -n "$(current_kid "$env")" ] ||
    fail ".kage.yaml's $env key ($(listed_kid "$env")) is not the cluster's current key ($(current_kid "$env"))"
  grep -q "$(current_recipient "$env")" "$repo/.kage.yaml" ||
    fail "the $env recipient is not in .kage.yaml"
done
[ "$(current_kid staging)" != "$(current_kid prod)" ] || fail "staging and prod have the same key"
ok "staging seals to kid $(current_kid staging), prod to kid $(current_kid prod), both also to the break-glass key"

step "Seal the example secrets (public keys only, no cluster access)"
seal() {
  local env=$1 name=$2
  shift 2
  (cd "$repo" && kage seal --env "$env" --name "$name" -n shop "$@" -o "overlays/$env/secrets/$name.yaml")
  grep -q 'kage:v1:' "$repo/overlays/$env/secrets/$name.yaml" || fail "overlays/$env/secrets/$name.yaml is not sealed"
}
seal staging db --from-literal username=shop --from-literal password=staging-db-password
seal staging api-token --from-literal token=staging-api-token
seal prod db --from-literal username=shop --from-literal password=prod-db-password
seal prod api-token --from-literal token=prod-api-token
(cd "$repo" && show kage validate overlays/staging/secrets/*.yaml overlays/prod/secrets/*.yaml) ||
  fail "kage validate refused a freshly sealed file"
if grep -rq 'prod-db-password\|staging-db-password' "$repo/overlays"; then
  fail "a plaintext value is in the repository"
fi
ok "4 AgeSecrets sealed; no plaintext in the repository"

# ---------------------------------------------------------------------------------------------
step "Apply each overlay: kubectl kustomize overlays/<env> | kubectl apply -f -"
for env in staging prod; do
  kubectl kustomize "$repo/overlays/$env" | k "$env" apply -f - | sed "s/^/    $env: /"
done

step "Wait for kage-controller to decrypt them (kubectl wait --for=condition=Ready)"
for env in staging prod; do
  k "$env" -n shop wait --for=condition=Ready agesecret/db agesecret/api-token --timeout=30s |
    sed "s/^/    $env: /" || fail "the AgeSecrets in $env did not become Ready: $(k "$env" -n shop get ags -o wide 2>&1)"
done
ok "every AgeSecret is Ready in both clusters"

step "Print the resulting Secrets, decoded"
secret_value() {
  k "$1" -n shop get secret "$2" -o jsonpath="{.data.$3}" | base64 -d
}
check_value() {
  local env=$1 name=$2 key=$3 want=$4 got
  got="$(secret_value "$env" "$name" "$key")"
  say "$env  secret/$name  $key = $got"
  [ "$got" = "$want" ] || fail "$env secret/$name $key is '$got', expected '$want'"
}
check_value staging db username shop
check_value staging db password staging-db-password
check_value staging api-token token staging-api-token
check_value prod db username shop
check_value prod db password prod-db-password
check_value prod api-token token prod-api-token
owner="$(k prod -n shop get secret db -o jsonpath='{.metadata.ownerReferences[0].kind}/{.metadata.labels.app\.kubernetes\.io/managed-by}')"
[ "$owner" = AgeSecret/kage ] || fail "secret/db is not owned by its AgeSecret ($owner)"
ok "each cluster has its own values, in Secrets owned by their AgeSecrets"

# ---------------------------------------------------------------------------------------------
step "Show that the prod manifest does not decrypt in staging"
say "asking each controller whether it can decrypt (POST /v1/verify through the service proxy;"
say "the answer never contains a value)"
kr validate --cluster --context prod overlays/prod/secrets/db.yaml ||
  fail "prod's controller cannot decrypt prod's own manifest"
grep -q ': ok (cluster can decrypt' "$tmp/show.out" || fail "prod's controller did not confirm the prod manifest"
rc=0
kr validate --cluster --context staging overlays/prod/secrets/db.yaml || rc=$?
# docs/cli.md: `validate --cluster` exits 3 when the controller answers UnknownKey.
[ "$rc" = 3 ] || fail "kage validate --cluster --context staging exited $rc, expected 3 (UnknownKey)"
grep -q UnknownKey "$tmp/show.out" || fail "staging's controller did not refuse the prod manifest with UnknownKey"
say "exit code $rc: staging has no key the prod manifest was sealed to (UnknownKey)"
say "applying prod's db AgeSecret to staging anyway"
k staging apply -f "$repo/overlays/prod/secrets/db.yaml" >/dev/null
k staging -n shop wait agesecret/db --timeout=30s \
  --for=jsonpath='{.status.conditions[?(@.type=="Ready")].reason}'=UnknownKey >/dev/null ||
  fail "staging did not report UnknownKey for the prod manifest"
say "staging: $(k staging -n shop get agesecret db -o jsonpath='Ready={.status.conditions[0].status} reason={.status.conditions[0].reason}: {.status.conditions[0].message}')"
check_value staging db password staging-db-password
ok "refused with UnknownKey, and staging's Secret was left exactly as it was"
kubectl kustomize "$repo/overlays/staging" | k staging apply -f - >/dev/null
k staging -n shop wait --for=condition=Ready agesecret/db --timeout=30s >/dev/null ||
  fail "staging did not recover after re-applying its own manifest"
ok "re-applied staging's own manifest: Ready again"

# ---------------------------------------------------------------------------------------------
step "Rotate prod's key, re-encrypt, re-apply"
old_kid="$(current_kid prod)"
say "asking prod's controller for a new key (admins only: it annotates the kage-public-keys ConfigMap)"
kr keys rotate --context prod --wait 30 || fail "kage keys rotate --context prod failed"
new_kid="$(awk -F '\t' 'NR == 1 { print $1 }' "$tmp/show.out")"
[ -n "$new_kid" ] && [ "$new_kid" != "$old_kid" ] || fail "kage keys rotate printed no new kid ('$new_kid')"
[ "$(current_kid prod)" = "$new_kid" ] || fail "prod publishes $(current_kid prod) as current, not $new_kid"
say "prod's current key: $old_kid -> $new_kid (the old key stays active for decryption)"
kr keys fetch --write-env prod || fail "kage keys fetch --write-env prod failed"
[ "$(listed_kid prod)" = "$new_kid" ] || fail ".kage.yaml's prod key is $(listed_kid prod), not $new_kid"
say "re-encrypting through prod's controller: no identity, so each file goes to its environment's"
say "cluster (context prod, from .kage.yaml) as POST /v1/reencrypt, with the break-glass key as extra"
say "recipient; the controller never returns plaintext"
(cd "$repo" && show kage reencrypt overlays/prod/secrets/*.yaml) ||
  fail "prod's controller did not re-encrypt the prod manifests"
for name in db api-token; do
  grep -q "kage:v1:$new_kid" "$repo/overlays/prod/secrets/$name.yaml" ||
    fail "$name is not sealed to the new key $new_kid"
done
(cd "$repo" && show kage validate overlays/prod/secrets/*.yaml) ||
  fail "kage validate refused a re-encrypted file"
kubectl kustomize "$repo/overlays/prod" | k prod apply -f - | sed 's/^/    prod: /'
kids_have_new() {
  k prod -n shop get agesecret db -o jsonpath='{.status.keyIds}' | grep "$new_kid" >/dev/null &&
    k prod -n shop get agesecret api-token -o jsonpath='{.status.keyIds}' | grep "$new_kid" >/dev/null
}
wait_for 30 kids_have_new || fail "prod's AgeSecrets do not report the new kid"
k prod -n shop wait --for=condition=Ready agesecret/db agesecret/api-token --timeout=30s >/dev/null ||
  fail "prod's AgeSecrets are not Ready after the rotation"
say "prod: agesecret/db status.keyIds = $(k prod -n shop get agesecret db -o jsonpath='{.status.keyIds}')"
check_value prod db password prod-db-password
if grep -q "kage:v1:$old_kid" "$repo"/overlays/prod/secrets/*.yaml; then
  fail "a prod value is still sealed to the old key"
fi
ok "prod's AgeSecrets are sealed to the new kid $new_kid and Ready; the values did not change"
say "which AgeSecrets still use which key (status.keyIds of every AgeSecret in prod; $(listed_kid_extra prod) is"
say "the break-glass key):"
kr keys usage --context prod || fail "kage keys usage --context prod failed"
awk -F '\t' -v old="$old_kid" '$1 == old && $2 == "-" { found = 1 } END { exit !found }' "$tmp/show.out" ||
  fail "kage keys usage still shows an AgeSecret on the old key $old_kid"
grep -q "^$new_kid	shop/db\$" "$tmp/show.out" || fail "kage keys usage does not show shop/db on $new_kid"
ok "nothing in prod uses the old key $old_kid any more (\`kage keys retire $old_kid --context prod\` could retire it)"

# ---------------------------------------------------------------------------------------------
step "Recover a value offline with the break-glass key (no cluster)"
recovered="$(cd "$repo" && kage unseal -i "$tmp/break-glass.txt" overlays/prod/secrets/db.yaml |
  sed -n 's/^  password: //p' | base64 -d)"
say "kage unseal -i break-glass.txt overlays/prod/secrets/db.yaml: password = $recovered"
[ "$recovered" = prod-db-password ] || fail "break-glass recovery gave '$recovered'"
ok "the break-glass key opens prod's re-encrypted manifest"

printf '\nDemo finished in %d s after the build: every step above was verified.\n' "$((SECONDS - started_at))"
