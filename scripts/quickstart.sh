#!/usr/bin/env bash
# The main job, on a Debian machine as root: install what the local VM driver
# needs, build the `machine` CLI (release), create the machine `default` on the
# default driver (a QEMU VM running the project's Debian image, built on first
# use), point the docker client at it and run a container there.
#
# Run it again and it reuses `default` (starting it if it is stopped). The
# machine lives in the usual store (~/.docker/machine, or MACHINE_STORAGE_PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n=== %s\n' "$*"; }
die() { echo "quickstart: error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (it installs Debian packages and builds the VM image with debootstrap)"
command -v cargo >/dev/null || die "needs a Rust toolchain: cargo is not on PATH"
started=$(date +%s)

say "1/4 installing QEMU, debootstrap and the docker client (what is missing)"
bash scripts/qemu-setup.sh

say "2/4 building the machine CLI (release: the commands you run all day start in milliseconds)"
cargo build --release --locked -p machine-cli
machine=$PWD/target/release/machine
[ -x "$machine" ] || die "the build finished but $machine is missing"

say "3/4 the machine 'default'"
state=$("$machine" status default 2>/dev/null) || state=absent
t0=$(date +%s)
case $state in
    Running)
        echo "'default' exists and is running: reusing it" ;;
    Stopped | Saved | Paused)
        echo "'default' exists and is $state: starting it"
        "$machine" start default ;;
    absent)
        echo "creating 'default' (the first run also builds the machine image: about 2-3 minutes)"
        # This demo runs only local images, so the VM gets no outside network;
        # leave out --qemu-network to let it pull from registries.
        "$machine" create --qemu-network restricted default ;;
    *)
        echo "'default' is in state '$state': removing it and creating it again"
        "$machine" rm -f -y default
        "$machine" create --qemu-network restricted default ;;
esac
ready=$(( $(date +%s) - t0 ))
"$machine" ls --filter name=default

say "4/4 docker against 'default' (TLS with the machine's certificates)"
eval "$("$machine" env default)"
docker version --format 'client {{.Client.Version}} -> server {{.Server.Version}} on {{.Server.Os}}/{{.Server.Arch}}'
tarball=$(mktemp --suffix=.tar)
trap 'rm -f "$tarball"' EXIT
bash scripts/make-test-image.sh "$tarball"
docker import "$tarball" quickstart-busybox:latest >/dev/null
docker run --rm quickstart-busybox:latest echo "hello from a container on machine $DOCKER_MACHINE_NAME"

cat <<EOF

Done in $(( $(date +%s) - started )) s ('default' ready after ${ready} s).
  DOCKER_HOST=$DOCKER_HOST

Point your shell's docker client at the machine:
  eval "\$($machine env default)"
Then: docker ps, docker run ...   Also: $machine ls | ssh default | stop default | rm -y default
Install the command for everyday use: install -m 755 $machine /usr/local/bin/machine
EOF
