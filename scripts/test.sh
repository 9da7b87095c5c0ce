#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine (as root):
# installs what the tests need, brings up throwaway test hosts (network
# namespaces with their own sshd), runs the Rust test suites and tears the
# hosts down again.
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
bash scripts/qemu-setup.sh

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
log "all tests passed"
