#!/usr/bin/env bash
# Build the `machine` CLI, create a machine on a throwaway local host and point
# the docker client at it. Run as root on Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "quickstart: run as root (it creates a network namespace)" >&2; exit 1; }
command -v cargo >/dev/null || { echo "quickstart: needs a Rust toolchain (cargo)" >&2; exit 1; }
bash scripts/testhosts.sh install
cargo build -p machine-cli
machine=$PWD/target/debug/machine
export MACHINE_STORAGE_PATH=${MACHINE_STORAGE_PATH:-$PWD/target/quickstart-store}

# A local Linux host reachable over SSH (network namespace with its own sshd).
bash scripts/testhosts.sh up 1
eval "$(bash scripts/testhosts.sh env)"

"$machine" rm -f -y default >/dev/null 2>&1 || true
# The local host shares this machine's kernel: its daemon gets no bridge or iptables rules.
"$machine" create -d generic \
    --generic-ip-address "${MT_HOSTS%% *}" --generic-ssh-key "$MT_KEY" \
    --engine-opt bridge=none --engine-opt iptables=false --engine-opt ip6tables=false \
    default
"$machine" ls
eval "$("$machine" env default)"
echo "--- DOCKER_HOST=$DOCKER_HOST"
docker version --format 'client {{.Client.Version}} -> server {{.Server.Version}} (TLS verified)'
bash scripts/make-test-image.sh "$MACHINE_STORAGE_PATH/busybox.tar"
docker import "$MACHINE_STORAGE_PATH/busybox.tar" quickstart-busybox:latest >/dev/null
docker run --rm --network none quickstart-busybox:latest echo "hello from a container on machine $DOCKER_MACHINE_NAME"
echo "--- done; '$machine rm -y default' and 'bash scripts/testhosts.sh down' clean up"
