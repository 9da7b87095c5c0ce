#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine (as root):
# installs what the tests need, brings up throwaway test hosts (network
# namespaces with their own sshd), runs the Rust test suites, the Python and
# Node.js bindings' tests, and tears the hosts down again.
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
if ! command -v nu >/dev/null || ! command -v npm >/dev/null; then
    command -v npm >/dev/null || apt-get install -y -qq nodejs npm >/dev/null
    command -v nu >/dev/null || npm install -g --silent nushell >/dev/null
fi
command -v nu >/dev/null || { echo "nushell (nu) could not be installed" >&2; exit 1; }
# moto_server, the EC2 emulator the amazonec2 suite (machine-cli/tests/ec2.rs) runs against
if ! command -v moto_server >/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check 'moto[server]' 2>/dev/null ||
        python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'moto[server]'
fi
moto_server --help >/dev/null || { echo "moto_server (pip package moto[server]) could not be installed" >&2; exit 1; }
# qemu-system-x86, qemu-utils and debootstrap for the local-VM driver
bash scripts/qemu-setup.sh

log "lint: rustfmt, shellcheck"
command -v shellcheck >/dev/null || {
    apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq shellcheck >/dev/null
}
cargo fmt --all --check
shellcheck -S warning scripts/*.sh benches/*.sh machine-cli/tests/scripts/*.sh machine-drivers/src/qemu/build-image.sh

export CARGO_TERM_COLOR=never
log "building (dev profile)"
cargo build --workspace --all-targets --locked
log "lint: clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "starting test hosts"
bash scripts/testhosts.sh up 21
trap 'bash "$ROOT/scripts/testhosts.sh" down || true' EXIT
eval "$(bash scripts/testhosts.sh env)"
# what the suites read (scripts/README.md, "How a suite finds its hosts")
export MT_HOSTS MT_HOST_NAMES MT_KEY MT_SUDO_USER MT_STATE

LOGS=$(mktemp -d)
fail() { echo "$1 failed" >&2; exit "$2"; }

log "Rust tests"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$LOGS/cargo.log"
status=${PIPESTATUS[0]}
[ "$status" = 0 ] || fail "cargo test" "$status"

log "Python bindings"
python3 -m pip install --quiet --disable-pip-version-check 'pytest>=7' mypy
MATURIN_PEP517_ARGS="--profile dev" CARGO_TARGET_DIR="$ROOT/target" \
    python3 -m pip install --quiet --disable-pip-version-check ./bindings-python
python3 -m pytest bindings-python/tests 2>&1 | tee "$LOGS/pytest.log"
status=${PIPESTATUS[0]}
[ "$status" = 0 ] || fail "pytest" "$status"

log "Node.js bindings"
# npm ci runs the package's install script: the addon is built in the same
# target directory and profile as above, so only bindings-node is compiled.
(cd bindings-node && npm ci --no-audit --no-fund && npm test) 2>&1 | tee "$LOGS/node.log"
status=${PIPESTATUS[0]}
[ "$status" = 0 ] || fail "node tests" "$status"

log "Fuzzing (bounded: ${MT_FUZZ_SECONDS:-30} s per target)"
bash scripts/fuzz.sh "${MT_FUZZ_SECONDS:-30}" 2>&1 | tee "$LOGS/fuzz.log"
status=${PIPESTATUS[0]}
[ "$status" = 0 ] || fail "fuzzing" "$status"

count() { # count WORD FILE: the number before WORD on the runner's closing line
    { grep -oE "[0-9]+ $1" "$2" || true; } | tail -n 1 | cut -d' ' -f1
}
cargo_sum() { # cargo_sum WORD: WORD (passed|failed) summed over every test binary
    awk -v w="$1" '/^test result:/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ "^" w) n += $i } END { print n + 0 }' "$LOGS/cargo.log"
}
rust_passed=$(cargo_sum passed); rust_failed=$(cargo_sum failed)
py_passed=$(count passed "$LOGS/pytest.log"); py_failed=$(count failed "$LOGS/pytest.log")
node_passed=$(count passed "$LOGS/node.log"); node_failed=$(count failed "$LOGS/node.log")
py_passed=${py_passed:-0}; py_failed=${py_failed:-0}; node_passed=${node_passed:-0}; node_failed=${node_failed:-0}
fuzz_passed=$(count passed "$LOGS/fuzz.log"); fuzz_failed=$(count failed "$LOGS/fuzz.log")
fuzz_passed=${fuzz_passed:-0}; fuzz_failed=${fuzz_failed:-0}
log "all tests passed"
echo "Rust: $rust_passed passed, $rust_failed failed"
echo "Python: $py_passed passed, $py_failed failed"
echo "Node.js: $node_passed passed, $node_failed failed"
echo "Fuzz targets: $fuzz_passed passed, $fuzz_failed failed"
echo "$((rust_passed + py_passed + node_passed + fuzz_passed)) passed, $((rust_failed + py_failed + node_failed + fuzz_failed)) failed"
