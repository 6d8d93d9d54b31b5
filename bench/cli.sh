#!/usr/bin/env bash
# CLI benchmarks: `kage` side by side with the real sops and age in one hyperfine run per task,
# plus peak RSS (GNU time). Results go to stdout and, as markdown tables, to $OUT (default
# target/bench-cli). docs/performance.md ("CLI") records the numbers of one run.
#
#   bench/cli.sh            # needs hyperfine, age, sops (scripts/tools.sh installs them), GNU time
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/tools.sh
command -v hyperfine >/dev/null || { echo "hyperfine is missing (apt-get install hyperfine)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "GNU time (/usr/bin/time) is missing (apt-get install time)" >&2; exit 1; }

target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release -q -j"${CARGO_BUILD_JOBS:-2}" -p kage
KAGE="$target/release/kage"
SOPS="$KAGE_TEST_SOPS"
AGE="$KAGE_TEST_AGE"
OUT="${OUT:-$target/bench-cli}"
mkdir -p "$OUT"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

# --- fixtures: one identity, a 5-key Secret, its sealed/SOPS/age forms, 1,000 manifests, 1 MiB
"$KAGE" keygen -o key.txt 2>/dev/null
R="$(sed -n 's/^# public key: //p' key.txt)"
export SOPS_AGE_KEY_FILE="$work/key.txt"
cat > s.yaml <<'YAML'
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
type: Opaque
stringData:
  username: admin
  password: correct-horse-battery-staple
  host: db.prod.svc.cluster.local
  port: "5432"
  url: postgres://admin:correct-horse-battery-staple@db.prod.svc.cluster.local:5432/app
YAML
"$KAGE" seal s.yaml -r "$R" -o sealed.yaml
"$KAGE" seal --sops s.yaml -r "$R" -o sops.yaml
"$AGE" -r "$R" -o s.age s.yaml
mkdir -p m out sops-out
for i in $(seq 1 1000); do sed "s/name: db/name: db$i/" s.yaml > "m/s$i.yaml"; done
# the largest single value a Secret can hold: 1 MiB of data minus the key "blob"
python3 - <<'PY'
import base64, os
v = base64.b64encode(os.urandom(1024 * 1024 - 4)).decode()
open("big.yaml", "w").write("apiVersion: v1\nkind: Secret\nmetadata: {name: big, namespace: prod}\ndata:\n  blob: " + v + "\n")
open("big.bin", "wb").write(os.urandom(1024 * 1024))
PY

regex='^(data|stringData)$'
hf() { hyperfine -N --warmup 10 --runs "${RUNS:-100}" --style basic "$@"; }

echo "## per file: encrypt a 5-key Secret"
hf --export-markdown "$OUT/encrypt.md" \
  -n "kage seal --sops" "$KAGE seal --sops s.yaml -r $R" \
  -n "kage seal" "$KAGE seal s.yaml -r $R" \
  -n "sops encrypt" "$SOPS encrypt --age $R --encrypted-regex $regex s.yaml" \
  -n "age -e" "$AGE -r $R s.yaml"

echo "## per file: decrypt it"
hf --export-markdown "$OUT/decrypt.md" \
  -n "kage unseal (SOPS)" "$KAGE unseal sops.yaml -i key.txt" \
  -n "kage unseal (AgeSecret)" "$KAGE unseal sealed.yaml -i key.txt" \
  -n "sops decrypt" "$SOPS decrypt sops.yaml" \
  -n "age -d" "$AGE -d -i key.txt s.age"

echo "## 1,000 manifests"
hyperfine --warmup 1 --runs "${RUNS_MANY:-5}" --style basic --export-markdown "$OUT/many.md" \
  -n "kage seal (1,000 files, one run)" "$KAGE seal m/*.yaml -r $R -o out" \
  -n "kage seal --sops (1,000 files, one run)" "$KAGE seal --sops m/*.yaml -r $R -o out"
hyperfine --runs 1 --style basic --export-markdown "$OUT/many-sops.md" \
  -n "sops encrypt loop (1,000 files)" \
  "for f in m/*.yaml; do $SOPS encrypt --age $R --encrypted-regex '$regex' \$f > sops-out/\${f#m/}; done"

echo "## a 1 MiB value"
hf --export-markdown "$OUT/big.md" \
  -n "kage seal (1 MiB value)" "$KAGE seal big.yaml -r $R" \
  -n "kage seal --sops (1 MiB value)" "$KAGE seal --sops big.yaml -r $R" \
  -n "age -e (1 MiB file)" "$AGE -r $R big.bin"

echo "## peak RSS (KiB, max of 5 runs)"
rss() {
  local name="$1"; shift
  local max=0 v
  for _ in 1 2 3 4 5; do
    /usr/bin/time -f '%M' -o rss.txt "$@" >/dev/null 2>&1
    v=$(tail -n1 rss.txt)
    [ "$v" -gt "$max" ] && max=$v
  done
  printf '| %s | %s |\n' "$name" "$max"
}
{
  echo "| command | peak RSS (KiB) |"
  echo "| --- | --- |"
  rss "kage seal --sops" "$KAGE" seal --sops s.yaml -r "$R"
  rss "kage seal" "$KAGE" seal s.yaml -r "$R"
  rss "kage unseal (SOPS)" "$KAGE" unseal sops.yaml -i key.txt
  rss "kage unseal (AgeSecret)" "$KAGE" unseal sealed.yaml -i key.txt
  rss "kage seal (1 MiB value)" "$KAGE" seal big.yaml -r "$R"
  rss "sops encrypt" "$SOPS" encrypt --age "$R" --encrypted-regex "$regex" s.yaml
  rss "sops decrypt" "$SOPS" decrypt sops.yaml
  rss "age -e" "$AGE" -r "$R" s.yaml
  rss "age -d" "$AGE" -d -i key.txt s.age
} | tee "$OUT/rss.md"
echo "markdown tables in $OUT"
