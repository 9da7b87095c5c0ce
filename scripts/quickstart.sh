#!/usr/bin/env bash
# The main job: build the `machine` CLI, create the machine `default` on the
# default local driver (a QEMU VM running the project's Debian image, built on
# first use) and point the docker client at it. Run as root on Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "quickstart: run as root (it installs packages)" >&2; exit 1; }
command -v cargo >/dev/null || { echo "quickstart: needs a Rust toolchain (cargo)" >&2; exit 1; }

echo "--- installing qemu, debootstrap and the docker client"
bash scripts/qemu-setup.sh
bash scripts/testhosts.sh install >/dev/null   # docker client, busybox-static (daemons stay off)
cargo build -p machine-cli
machine=$PWD/target/debug/machine
export MACHINE_STORAGE_PATH=${MACHINE_STORAGE_PATH:-$PWD/target/quickstart-store}

"$machine" rm -f -y default >/dev/null 2>&1 || true
echo "--- machine create default (the first run also builds the machine image: a few minutes)"
# This demo only runs local images, so the VM gets no outside network; leave out
# --qemu-network to let it pull from registries.
"$machine" create --qemu-network restricted default
"$machine" ls
eval "$("$machine" env default)"
echo "--- DOCKER_HOST=$DOCKER_HOST"
docker version --format 'client {{.Client.Version}} -> server {{.Server.Version}} (TLS verified)'
bash scripts/make-test-image.sh "$MACHINE_STORAGE_PATH/busybox.tar"
docker import "$MACHINE_STORAGE_PATH/busybox.tar" quickstart-busybox:latest >/dev/null
docker run --rm quickstart-busybox:latest echo "hello from a container on machine $DOCKER_MACHINE_NAME"
echo "--- done; '$machine stop default' or '$machine rm -y default' when finished"
