#!/usr/bin/env bash
# Build the project, create a machine on a throwaway local host and point the
# docker client at it. Run as root on Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "quickstart: run as root (it creates a network namespace)" >&2; exit 1; }
command -v cargo >/dev/null || { echo "quickstart: needs a Rust toolchain (cargo)" >&2; exit 1; }
bash scripts/testhosts.sh install
cargo build --release -p examples --bin quickstart
bash scripts/testhosts.sh up 1
eval "$(bash scripts/testhosts.sh env)"
store=${MACHINE_STORAGE_PATH:-$PWD/target/quickstart-store}
export MT_HOSTS MT_KEY
./target/release/quickstart "$store" default > "$store.env"
eval "$(cat "$store.env")"
echo "--- DOCKER_HOST=$DOCKER_HOST"
docker version --format 'client {{.Client.Version}} -> server {{.Server.Version}}'
bash scripts/make-test-image.sh "$store.busybox.tar"
docker import "$store.busybox.tar" quickstart-busybox:latest >/dev/null
docker run --rm --network none quickstart-busybox:latest echo "hello from a container on machine $DOCKER_MACHINE_NAME"
echo "--- done; 'bash scripts/testhosts.sh down' removes the local host"
