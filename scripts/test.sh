#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine (as root):
# installs what the tests need, brings up throwaway test hosts (network
# namespaces with their own sshd), runs the Rust test suites and the Python
# bindings' tests, and tears the hosts down again.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '\n=== %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh must run as root (it creates network namespaces and runs dockerd)" >&2
    exit 1
fi

log "installing test dependencies"
bash scripts/testhosts.sh install
# nushell for the env rendering tests: Debian has no package, npm has one
if ! command -v nu >/dev/null; then
    command -v npm >/dev/null || apt-get install -y -qq nodejs npm >/dev/null
    npm install -g --silent nushell >/dev/null
fi
command -v nu >/dev/null || { echo "nushell (nu) could not be installed" >&2; exit 1; }

export CARGO_TERM_COLOR=never
log "building (dev profile)"
cargo build --workspace --all-targets --locked

log "starting test hosts"
bash scripts/testhosts.sh up 10
trap 'bash "$ROOT/scripts/testhosts.sh" down || true' EXIT
eval "$(bash scripts/testhosts.sh env)"
export MT_HOSTS MT_KEY MT_SUDO_USER MT_STATE

log "Rust tests"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee /tmp/machine-cargo-test.log
status=${PIPESTATUS[0]}
if [ "$status" != 0 ]; then
    echo "cargo test failed" >&2
    exit "$status"
fi
log "Python bindings"
python3 -m pip install --quiet --disable-pip-version-check 'pytest>=7' mypy
MATURIN_PEP517_ARGS="--profile dev" CARGO_TARGET_DIR="$ROOT/target" \
    python3 -m pip install --quiet --disable-pip-version-check ./bindings-python
python3 -m pytest bindings-python/tests 2>&1 | tee /tmp/machine-pytest.log
status=${PIPESTATUS[0]}
if [ "$status" != 0 ]; then
    echo "pytest failed" >&2
    exit "$status"
fi

count() { # count WORD FILE: the number before WORD on the runner's closing line
    { grep -oE "[0-9]+ $1" "$2" || true; } | tail -n 1 | cut -d' ' -f1
}
rust_passed=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^passed/) p += $i } END { print p + 0 }' /tmp/machine-cargo-test.log)
rust_failed=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^failed/) f += $i } END { print f + 0 }' /tmp/machine-cargo-test.log)
py_passed=$(count passed /tmp/machine-pytest.log); py_passed=${py_passed:-0}
py_failed=$(count failed /tmp/machine-pytest.log); py_failed=${py_failed:-0}
log "all tests passed"
echo "Rust: $rust_passed passed, $rust_failed failed"
echo "Python: $py_passed passed, $py_failed failed"
echo "$((rust_passed + py_passed)) passed, $((rust_failed + py_failed)) failed"
