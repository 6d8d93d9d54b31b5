#!/usr/bin/env bash
# Benchmarks of kage-core next to the real sops and age, in one run on one machine.
#   1. criterion (in-process): sealed values, SOPS encrypt/decrypt of 5-key, 100-key and 1 MiB files
#   2. hyperfine (whole processes): `sops -d` vs kage's `sops_decrypt` example on the same files,
#      and `age -d` vs kage's `seal_open open` on one sealed value.
# Results: bench/results/ (JSON and markdown); summarise them in docs/performance.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/tools.sh
out="$root/bench/results"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo build -q --release -p kage-core --examples
ex="$root/target/release/examples"

echo "== criterion (in process)"
cargo bench -q -p kage-core --bench core -- --warm-up-time 1 --measurement-time 5 2>&1 \
  | grep -E "^[a-z]|time:|thrpt:" | tee "$out/criterion.txt"

echo "== whole processes: kage vs sops vs age"
age-keygen -o "$work/key.txt" 2>/dev/null
recipient="$(grep -o 'age1[0-9a-z]*' "$work/key.txt" | head -n1)"
gen_secret() { # $1 = number of keys, $2 = value length
  printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\n  namespace: prod\ntype: Opaque\ndata:\n'
  python3 -c "import sys; n,l=int(sys.argv[1]),int(sys.argv[2]); [print(f'  key-{i}: '+'x'*l) for i in range(n)]" "$1" "$2"
}
gen_secret 5 24 > "$work/s5.yaml"
gen_secret 100 24 > "$work/s100.yaml"
gen_secret 1 1048576 > "$work/big.yaml"
for f in s5 s100 big; do
  "$KAGE_TEST_SOPS" --encrypt --age "$recipient" --encrypted-regex '^(data|stringData)$' \
    "$work/$f.yaml" > "$work/$f.enc.yaml"
done
export SOPS_AGE_KEY_FILE="$work/key.txt"
for f in s5 s100 big; do
  hyperfine -N --warmup 3 --min-runs 20 \
    --export-json "$out/sops-decrypt-$f.json" --export-markdown "$out/sops-decrypt-$f.md" \
    -n "kage sops_decrypt $f" "$ex/sops_decrypt $work/$f.enc.yaml $work/key.txt" \
    -n "sops -d $f" "$KAGE_TEST_SOPS -d $work/$f.enc.yaml"
done

printf 'correct horse battery staple' > "$work/value"
"$ex/seal_open" seal "$recipient" prod db password < "$work/value" > "$work/value.kage"
cut -d: -f4 "$work/value.kage" | base64 -d > "$work/value.age"
# Both through the shell (hyperfine 1.15 has no --input), so both pay the same shell start.
hyperfine --warmup 3 --min-runs 30 \
  --export-json "$out/open-one-value.json" --export-markdown "$out/open-one-value.md" \
  -n "kage open one sealed value" "$ex/seal_open open $work/key.txt prod db password < $work/value.kage" \
  -n "age -d the same ciphertext" "age -d -i $work/key.txt $work/value.age"
cat "$out"/*.md
