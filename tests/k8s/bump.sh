#!/usr/bin/env bash
# Pin tests/k8s to another Kubernetes release: k8s.io/kubernetes VERSION, every staging module it maps to
# ./staging replaced by the matching v0.x tag, etcd at the version that release requires, then tidy.
#   tests/k8s/bump.sh v1.37.2
set -euo pipefail
v="${1:?usage: tests/k8s/bump.sh VERSION (e.g. v1.37.2)}"
cd "$(dirname "${BASH_SOURCE[0]}")"
export GOTOOLCHAIN=local
sv="v0.${v#v1.}"
kmod="$(go mod download -json "k8s.io/kubernetes@$v" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
# Drop the old replace lines, add one per staging module the proxy serves at $sv.
for old in $(go mod edit -json | python3 -c 'import json,sys; [print(r["Old"]["Path"]) for r in json.load(sys.stdin).get("Replace") or []]'); do
  go mod edit -dropreplace="$old"
done
for m in $(sed -n 's|^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/src/k8s\.io/.*|\1|p' "$kmod"); do
  if go mod download "$m@$sv" 2>/dev/null; then
    go mod edit -replace="$m=$m@$sv"
  fi
done
etcd="$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2; exit }' "$kmod")"
go mod edit -require="k8s.io/kubernetes@$v" -require="go.etcd.io/etcd/server/v3@$etcd"
go mod tidy
echo "tests/k8s now pins Kubernetes $v (staging $sv, etcd $etcd)"
