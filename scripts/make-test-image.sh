#!/usr/bin/env bash
# Build a tiny root file system tarball from Debian's busybox-static, for
#   docker import OUT.tar mt-busybox:latest
# where no image registry is reachable. The tarball is reproducible (fixed
# owners, modes and times) and is written atomically.
#
#   make-test-image.sh OUT.tar
set -euo pipefail

die() { echo "make-test-image: error: $*" >&2; exit 1; }

[ $# -eq 1 ] || { echo "usage: make-test-image.sh OUT.tar" >&2; exit 2; }
out=$1
bb=/bin/busybox
[ -x "$bb" ] || die "$bb is missing (apt-get install busybox-static)"
# A dynamically linked busybox (package busybox) would need the machine's libc.
if ldd "$bb" >/dev/null 2>&1; then
    die "$bb is dynamically linked; install busybox-static instead of busybox"
fi
applets=$("$bb" --list) || die "$bb --list failed"

root=$(mktemp -d)
tmp_out=
trap 'rm -rf "$root"; [ -z "$tmp_out" ] || rm -f "$tmp_out"' EXIT
chmod 755 "$root"
mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev,root,var,run}
chmod 1777 "$root/tmp"
chmod 700 "$root/root"
install -m 755 "$bb" "$root/bin/busybox"
wanted="sh ash echo cat ls sleep true false hostname uname id env printf wc grep sed awk
    head tail mkdir rm cp mv ln touch chmod date pwd ps kill test [ [[ which whoami
    basename dirname stat sort uniq tr cut tee xargs find mount df du free top nc wget"
n=0
for a in $wanted; do
    if grep -qxF -- "$a" <<<"$applets"; then
        ln -s busybox "$root/bin/$a"
        n=$((n + 1))
    fi
done
[ -L "$root/bin/sh" ] || die "busybox has no sh applet"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
echo "mt-busybox" > "$root/etc/hostname"

mkdir -p "$(dirname "$out")"
tmp_out=$(mktemp "$(dirname "$out")/.make-test-image.XXXXXX")
tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -cf "$tmp_out" .
chmod 644 "$tmp_out"
mv -f "$tmp_out" "$out"
tmp_out=
echo "make-test-image: wrote $out (busybox with $n applet links)" >&2
