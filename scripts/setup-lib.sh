# shellcheck shell=bash
# Shared by the setup scripts (sourced, not run): installing Debian packages in
# one apt transaction and checking afterwards that what the scripts rely on is
# really there. Callers set SETUP_TAG (the prefix of every message) first.
#
#   setup_install PKG...        apt-get install what is given, in one transaction
#   setup_need WHAT HINT CMD... run CMD quietly; remember WHAT and HINT if it fails
#   setup_verify                exit 1 with one line per missing thing, if any
#   pkg_installed PKG           whether dpkg has PKG installed
#   pkg_version PKG             the installed version of PKG (empty if none)
#   qemu_packages               the package specs that give a matching
#                               qemu-system-x86 and qemu-utils (empty if fine)

SETUP_TAG=${SETUP_TAG:-setup}
_setup_missing=()
_setup_updated=0

setup_die() { echo "$SETUP_TAG: error: $*" >&2; exit 1; }
setup_info() { echo "$SETUP_TAG: $*" >&2; }

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
pkg_version() {
    pkg_installed "$1" && dpkg-query -W -f='${Version}' "$1" 2>/dev/null
    return 0
}

setup_apt_update() {
    [ "$_setup_updated" = 1 ] && return 0
    apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null 2>&1 ||
        apt-get -o DPkg::Lock::Timeout=600 update -qq || setup_die "apt-get update failed"
    _setup_updated=1
}

# The available versions of PKG, one per line (after an update).
pkg_available() { apt-cache madison "$1" 2>/dev/null | awk -F'|' '{gsub(/ /, "", $2); print $2}'; }

# qemu-system-x86 needs qemu-utils from the same source package version: a newer
# qemu-utils (a backport, as some machines ship) is otherwise removed by apt when
# it installs the release's emulator. Ask for both at one version.
qemu_packages() {
    local sys utils want
    sys=$(pkg_version qemu-system-x86)
    utils=$(pkg_version qemu-utils)
    if [ -n "$sys" ]; then
        [ -n "$utils" ] || echo "qemu-utils=$sys"
        return 0
    fi
    setup_apt_update
    want=$(apt-cache policy qemu-system-x86 2>/dev/null | awk '/Candidate:/ {print $2}')
    [ -n "$want" ] && [ "$want" != "(none)" ] || setup_die "no qemu-system-x86 package is available from the configured package sources"
    echo "qemu-system-x86=$want"
    if [ "$utils" != "$want" ]; then
        if pkg_available qemu-utils | grep -qxF -- "$want"; then
            echo "qemu-utils=$want"
        else
            echo "qemu-utils"
        fi
    fi
}

# Install PKG... (names or name=version) in one apt transaction. Services that
# packages would start are kept off where there is no systemd to ask.
setup_install() {
    [ $# -gt 0 ] || return 0
    setup_apt_update
    setup_info "installing $*"
    export DEBIAN_FRONTEND=noninteractive
    local policy_added=0 log rc=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_added=1
    fi
    log=$(mktemp)
    apt-get -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef \
        -o Dpkg::Options::=--force-confold install -y -qq --no-install-recommends \
        --allow-downgrades "$@" > "$log" 2>&1 || rc=$?
    [ $policy_added = 0 ] || rm -f /usr/sbin/policy-rc.d
    if [ $rc != 0 ]; then
        tail -n 30 "$log" >&2
        rm -f "$log"
        setup_die "apt-get install $* failed (exit $rc)"
    fi
    rm -f "$log"
}

setup_need() {
    local what=$1 hint=$2
    shift 2
    "$@" >/dev/null 2>&1 || _setup_missing+=("$what is missing or does not run ($*): $hint")
}

setup_verify() {
    [ ${#_setup_missing[@]} -eq 0 ] && return 0
    local m
    for m in "${_setup_missing[@]}"; do echo "$SETUP_TAG: error: $m" >&2; done
    exit 1
}
