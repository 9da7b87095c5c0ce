#!/usr/bin/env bash
# Installs what the qemu driver and its tests need on Debian (as root): the QEMU
# system emulator with a qemu-utils of the same version (one apt transaction),
# debootstrap and e2fsprogs (to build the machine image), and for the tests and
# the quick start the docker client and busybox-static. Then checks that each
# program runs and says in one line per problem what is missing. Installs
# nothing when all is there.
set -euo pipefail
SETUP_TAG="qemu-setup"
# shellcheck source=scripts/setup-lib.sh
. "$(dirname "$0")/setup-lib.sh"
[ "$(id -u)" = 0 ] || setup_die "must run as root"

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
pkgs=()
mapfile -t qemu < <(qemu_packages)
pkgs+=("${qemu[@]}")
pkg_installed debootstrap || pkgs+=(debootstrap)
have mkfs.ext4 && have debugfs || pkgs+=(e2fsprogs)
have docker || pkgs+=(docker.io)
[ -x /bin/busybox ] || pkgs+=(busybox-static)
setup_install "${pkgs[@]}"

setup_need qemu-system-x86_64 "apt-get install qemu-system-x86" qemu-system-x86_64 --version
setup_need qemu-img "apt-get install qemu-utils (the same version as qemu-system-x86)" qemu-img --version
setup_need debootstrap "apt-get install debootstrap" debootstrap --version
setup_need mkfs.ext4 "apt-get install e2fsprogs" mkfs.ext4 -V
setup_need debugfs "apt-get install e2fsprogs" debugfs -V
setup_need docker "install the docker client (apt-get install docker.io)" docker --version
setup_need busybox "apt-get install busybox-static" /bin/busybox true
setup_verify
