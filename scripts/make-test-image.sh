#!/usr/bin/env bash
# Build a tiny root file system tarball from busybox-static, for
# `docker import OUT.tar NAME` where no image registry is reachable.
#   make-test-image.sh OUT.tar
set -euo pipefail
out=${1:?usage: make-test-image.sh OUT.tar}
bb=/bin/busybox
[ -x "$bb" ] || die=1
if [ "${die:-0}" = 1 ] || ! "$bb" --list >/dev/null 2>&1; then
    echo "make-test-image: busybox-static is not installed (apt-get install busybox-static)" >&2
    exit 1
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev}
cp "$bb" "$root/bin/busybox"
for applet in sh echo cat ls sleep true false hostname uname id env printf wc grep; do
    ln -s busybox "$root/bin/$applet"
done
echo "root:x:0:0:root:/:/bin/sh" > "$root/etc/passwd"
tar -C "$root" -cf "$out" .
