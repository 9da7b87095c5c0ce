#!/usr/bin/env bash
# Bench of the qemu driver: create-to-docker-ready (VM boot vs provisioning),
# idle memory and CPU per VM, stop and start times.
#   benches/qemu-bench.sh [ROUNDS]
# Environment: MACHINE_QEMU_ACCEL (tcg by default; kvm or auto where KVM
# works), MACHINE_QEMU_CACHE (image cache; default target/qemu-cache, the image
# is built there first when missing). Needs root and what scripts/qemu-setup.sh
# installs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/qemu-setup.sh
export MACHINE_QEMU_ACCEL=${MACHINE_QEMU_ACCEL:-tcg}
export MACHINE_QEMU_CACHE=${MACHINE_QEMU_CACHE:-${CARGO_TARGET_DIR:-$PWD/target}/qemu-cache}
cargo run -q -p benches --bin bench_qemu -- "${1:-1}"
