#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine (as root):
# installs what the tests need, brings up throwaway test hosts (network
# namespaces with their own sshd), runs the Rust test suites and the Node.js
# bindings' tests and tears the hosts down again.
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

export CARGO_TERM_COLOR=never
log "building (dev profile)"
cargo build --workspace --all-targets --locked

log "starting test hosts"
bash scripts/testhosts.sh up 8
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
log "Node.js bindings"
# npm ci runs the package's install script: the addon is built in the same
# target directory and profile as above, so only bindings-node is compiled.
(cd bindings-node && npm ci --no-audit --no-fund && npm test)

log "all tests passed"
