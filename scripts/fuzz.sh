#!/usr/bin/env bash
# Runs every libFuzzer target of fuzz/ for MINUTES each (default 5), after seeding its corpus from
# the repository's test vectors and fixtures. Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz --locked`; scripts/tools.sh installs it).
#   scripts/fuzz.sh [MINUTES] [TARGET...]
#   FUZZ_SECONDS=20 scripts/fuzz.sh       # a short bounded run (CI: scripts/test.sh)
#   FUZZ_SANITIZER=address scripts/fuzz.sh 10   # with ASan (default: none; the code is safe Rust)
# A crash leaves its input in fuzz/artifacts/<target>/ and fails the script; each becomes a unit
# test of the crate that owns the parser.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"

minutes="${1:-5}"
shift || true
seconds="${FUZZ_SECONDS:-$((minutes * 60))}"
sanitizer="${FUZZ_SANITIZER:-none}"
jobs="${CARGO_BUILD_JOBS:-2}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)

# seed TARGET FILE...: copy the files (small, text) into the target's corpus.
seed() {
  local t="$1"
  shift
  mkdir -p "corpus/$t"
  for f in "$@"; do
    [ -f "$f" ] && cp "$f" "corpus/$t/seed-$(basename "$(dirname "$f")")-$(basename "$f")"
  done
  return 0
}
v="$root/shared/tests/vectors"
fx="$root/cli/tests/cmd/fixtures"
yaml_files=("$v"/sops/*.yaml "$fx"/*.yaml "$root"/examples/gitops/*.yaml)
json_files=("$v"/sops/*.json)
seed sealed "$v"/sealed/*.txt
# Each sealed value alone as well.
for f in "$v"/sealed/*.txt; do
  sed -n 's/^sealed: //p' "$f" >"corpus/sealed/value-$(basename "$f")"
done
seed sops_yaml "${yaml_files[@]}"
seed sops_json "${json_files[@]}"
seed document_roundtrip "${yaml_files[@]}" "${json_files[@]}"
seed kage_config "$fx/.kage.yaml" "$root/examples/gitops/.kage.yaml"
seed manifest "$fx"/*.yaml "${json_files[@]}"
seed identity "$v"/sops/key.txt "$fx"/key.txt "$fx"/other.txt "$fx"/bad-recipients.txt
seed plan "$fx"/sealed.yaml "$fx"/sops-agesecret.yaml "$fx"/tampered.yaml "$fx"/moved.yaml
mkdir -p corpus/http_body
for f in "$fx"/sealed.yaml "$fx"/sops-agesecret.yaml "$fx"/tampered.yaml; do
  # First byte: the declared content type (0 none, 1 JSON, 2 YAML); then the body.
  { printf '\x02'; cat "$f"; } >"corpus/http_body/yaml-$(basename "$f")"
  { printf '\x02ageSecret:\n'; sed 's/^/  /' "$f"; printf 'extraRecipients: [%s]\n' \
      "$(sed -n 's/^# public key: //p' "$fx/key.txt")"; } >"corpus/http_body/envelope-$(basename "$f")"
done

export CARGO_BUILD_JOBS="$jobs"
start=$(date +%s)
cargo +nightly fuzz build -s "$sanitizer" --release
echo "fuzz: built the targets in $(($(date +%s) - start)) s"
status=0
for t in "${targets[@]}"; do
  echo "fuzz: $t for ${seconds} s"
  # -rss_limit_mb: a parser that grows past 512 MB is a finding; -timeout: so is one that hangs.
  if ! cargo +nightly fuzz run -s "$sanitizer" --release "$t" "corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=512 -timeout=10 -max_len=65536 \
      -print_final_stats=1 2>"artifacts-$t.log"; then
    status=1
    echo "fuzz: $t FAILED (see fuzz/artifacts-$t.log and fuzz/artifacts/$t/)" >&2
  fi
  grep -E '^#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb' "artifacts-$t.log" | sed "s/^/  $t: /" || true
done
exit "$status"
