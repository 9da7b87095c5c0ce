#!/usr/bin/env bash
# Installs what the qemu driver and its tests need on Debian (as root): QEMU,
# qemu-img, debootstrap (to build the machine image), and for the tests the
# docker CLI and busybox-static. Does nothing when all are there.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
    echo "qemu-setup: must run as root" >&2
    exit 1
fi
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
pkgs=()
have qemu-system-x86_64 || pkgs+=(qemu-system-x86)
have qemu-img || pkgs+=(qemu-utils)
have debootstrap || pkgs+=(debootstrap)
have mkfs.ext4 || pkgs+=(e2fsprogs)
have docker || pkgs+=(docker.io)
[ -x /bin/busybox ] || pkgs+=(busybox-static)
if [ ${#pkgs[@]} = 0 ]; then
    exit 0
fi
echo "qemu-setup: installing ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
if ! apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null; then
    # qemu-system-x86 needs qemu-utils of the same release: when a newer
    # qemu-utils (backports) is installed, take both from the release.
    release=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
    with_release=()
    for p in "${pkgs[@]}"; do
        case $p in qemu-system-x86|qemu-utils) with_release+=("$p/$release");; *) with_release+=("$p");; esac
    done
    case " ${pkgs[*]} " in *" qemu-system-x86 "*) with_release+=("qemu-utils/$release");; esac
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends --allow-downgrades "${with_release[@]}" >/dev/null
fi
have qemu-system-x86_64 || { echo "qemu-setup: qemu-system-x86_64 missing after install" >&2; exit 1; }
