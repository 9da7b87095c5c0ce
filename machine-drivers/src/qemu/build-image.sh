#!/usr/bin/env bash
# Builds the machine image: Debian 12 (bookworm) from Debian's packages, for
# direct kernel boot under QEMU.
#
#   build-image.sh OUTDIR [docker|nodocker]
#
# OUTDIR receives disk.qcow2 (compressed qcow2 holding an ext4 root file system
# on the whole disk, no partition table), vmlinuz, initrd.img and
# manifest.json. The variant `nodocker` leaves Docker out and also writes
# apt-repo/: the .deb files of docker.io and everything it needs that the image
# lacks, as a flat apt repository (for installing Docker without a network).
#
# The image holds no certificates and no daemon settings. A unit run at every
# boot (machine-init) reads from QEMU's fw_cfg:
#   opt/machine/ssh-key   authorized key for root
#   opt/machine/hostname  host name
#   opt/machine/mounts    lines "TAG GUESTDIR [ro]": 9p shares to mount
# and makes the SSH host key on first boot. A systemd generator installs
#   opt/machine/docker/{ca.pem,server.pem,server-key.pem,docker.conf}
# (the Docker daemon's TLS material and systemd drop-in, handed over at the
# first boot only) before the units are read. Docker starts at boot, as on any
# Debian system: with the handed-over configuration it starts once, already
# listening on its TLS port; without it, on its local socket only.
#
# Environment: MACHINE_IMAGE_MIRROR (Debian mirror URL),
# MACHINE_IMAGE_SUITE (default bookworm). Needs root, debootstrap, mkfs.ext4
# (e2fsprogs >= 1.43), debugfs and qemu-img. Progress lines start with "==> ".
set -euo pipefail
export LC_ALL=C

out=${1:?usage: build-image.sh OUTDIR [docker|nodocker]}
variant=${2:-docker}
# What machine-init and the generator read (see above); the driver
# rebuilds older images.
init_version=2
mirror=${MACHINE_IMAGE_MIRROR:-http://deb.debian.org/debian}
suite=${MACHINE_IMAGE_SUITE:-bookworm}
label=machine-root

step() { printf '==> %s\n' "$*"; }
die() { printf 'build-image: %s\n' "$*" >&2; exit 1; }

case $variant in docker|nodocker) ;; *) die "unknown variant $variant (docker or nodocker)";; esac
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap)"
for t in debootstrap mkfs.ext4 qemu-img debugfs chroot; do
    command -v "$t" >/dev/null 2>&1 || die "$t is not installed (apt-get install debootstrap e2fsprogs qemu-utils)"
done

start=$(date +%s)
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
work=$(mktemp -d "$out.build.XXXXXX")
root=$work/root
mounted=()
cleanup() {
    local m
    for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

pkgs=systemd-sysv,dbus,udev,kmod,openssh-server,sudo,iproute2,ca-certificates,apparmor,initramfs-tools,zstd,linux-image-amd64
[ "$variant" = docker ] && pkgs=$pkgs,docker.io,curl

step "packages (debootstrap $suite from $mirror, 1-2 minutes)"
debootstrap --variant=minbase --include="$pkgs" "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    die "debootstrap failed"
}

in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C DEBIAN_FRONTEND=noninteractive "$@"; }
mount_pseudo() {
    mount -t proc proc "$root/proc" && mounted+=("$root/proc")
    mount -t sysfs sysfs "$root/sys" && mounted+=("$root/sys")
}
umount_pseudo() {
    local m
    for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null || true; done
    mounted=()
}

kver=$(basename "$(ls -d "$root"/lib/modules/* | sort -V | tail -n 1)")

if [ "$variant" = nodocker ]; then
    step "packages (docker.io and its dependencies into a local apt repository)"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    rm -f "$root"/var/cache/apt/archives/*.deb
    mount_pseudo
    in_root apt-get -q update >"$work/apt.log" 2>&1 || { tail -n 20 "$work/apt.log" >&2; die "apt-get update failed"; }
    in_root apt-get -q -y --no-install-recommends install --download-only docker.io apparmor >>"$work/apt.log" 2>&1 \
        || { tail -n 20 "$work/apt.log" >&2; die "downloading docker.io failed"; }
    umount_pseudo
    repo=$work/apt-repo
    mkdir -p "$repo"
    mv "$root"/var/cache/apt/archives/*.deb "$repo/"
    : >"$repo/Packages"
    for deb in "$repo"/*.deb; do
        dpkg-deb -f "$deb" >>"$repo/Packages"
        {
            printf 'Filename: ./%s\n' "$(basename "$deb")"
            printf 'Size: %s\n' "$(stat -c %s "$deb")"
            printf 'SHA256: %s\n\n' "$(sha256sum "$deb" | cut -d' ' -f1)"
        } >>"$repo/Packages"
    done
    gzip -9nk "$repo/Packages"
    {
        printf 'Origin: machine\nLabel: machine offline packages\nSuite: %s\nCodename: %s\n' "$suite" "$suite"
        printf 'Date: %s\nSHA256:\n' "$(date -u -R)"
        for f in Packages Packages.gz; do
            printf ' %s %s %s\n' "$(sha256sum "$repo/$f" | cut -d' ' -f1)" "$(stat -c %s "$repo/$f")" "$f"
        done
    } >"$repo/Release"
fi

step "system configuration"
cat >"$root/etc/fstab" <<FSTAB
LABEL=$label / ext4 defaults,errors=remount-ro,x-systemd.growfs 0 1
FSTAB
echo machine >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 machine\n::1 localhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
echo 'nameserver 10.0.2.3' >"$root/etc/resolv.conf"
# QEMU user networking: the guest is 10.0.2.15, the gateway 10.0.2.2.
mkdir -p "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/10-machine.network" <<'NET'
[Match]
Name=en* eth*

[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
DNS=10.0.2.3
LinkLocalAddressing=no
IPv6AcceptRA=no
NET
# Each machine gets its own machine-id and SSH host key on first boot.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
mkdir -p "$root/etc/ssh/sshd_config.d"
cat >"$root/etc/ssh/sshd_config.d/10-machine.conf" <<'SSHD'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
SSHD

cat >"$root/usr/local/sbin/machine-init" <<'INIT'
#!/bin/sh
# Reads this machine's identity from QEMU's fw_cfg (SSH key, host name, 9p
# shares) and makes the SSH host key on first boot. Runs at every boot.
d=/sys/firmware/qemu_fw_cfg/by_name/opt/machine
modprobe qemu_fw_cfg 2>/dev/null || true
if [ -r "$d/ssh-key/raw" ]; then
    install -d -m 700 /root/.ssh
    cat "$d/ssh-key/raw" >/root/.ssh/authorized_keys.new
    chmod 600 /root/.ssh/authorized_keys.new
    mv /root/.ssh/authorized_keys.new /root/.ssh/authorized_keys
fi
if [ -r "$d/hostname/raw" ] && [ ! -e /var/lib/machine/hostname-set ]; then
    h=$(tr -cd 'A-Za-z0-9.-' <"$d/hostname/raw")
    if [ -n "$h" ]; then
        echo "$h" >/etc/hostname
        sed -i "s/^127\.0\.1\.1[[:space:]].*/127.0.1.1 $h/" /etc/hosts
        hostname "$h"
    fi
    mkdir -p /var/lib/machine && : >/var/lib/machine/hostname-set
fi
if [ ! -s /etc/ssh/ssh_host_ed25519_key ]; then
    ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
fi
if [ -r "$d/mounts/raw" ]; then
    modprobe 9pnet_virtio 2>/dev/null || true
    while read -r tag dir mode; do
        [ -n "$tag" ] && [ -n "$dir" ] || continue
        mkdir -p "$dir"
        o=trans=virtio,version=9p2000.L,msize=262144
        [ "$mode" = ro ] && o=$o,ro
        mount -t 9p -o "$o" "$tag" "$dir" || echo "machine-init: cannot mount $tag on $dir" >&2
    done <"$d/mounts/raw"
fi
echo "machine-init: done"
INIT
chmod 755 "$root/usr/local/sbin/machine-init"
cat >"$root/etc/systemd/system/machine-init.service" <<'UNIT'
[Unit]
Description=Machine identity from the hypervisor (SSH key, host name, shares)
DefaultDependencies=no
After=local-fs.target systemd-remount-fs.service
Before=ssh.service systemd-networkd.service sysinit.target
Wants=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/machine-init
StandardOutput=journal+console

[Install]
WantedBy=sysinit.target
UNIT

# The Docker daemon's configuration handed over at the first boot is
# installed by a systemd generator: generators run before systemd reads its
# units, so the daemon's drop-in is in place when its unit is loaded (a
# service would need a daemon-reload, which costs seconds under emulation).
mkdir -p "$root/usr/local/lib/systemd/system-generators"
cat >"$root/usr/local/lib/systemd/system-generators/machine-docker" <<'GEN'
#!/bin/sh
# Installs the Docker daemon's TLS material and systemd drop-in handed over
# through QEMU's fw_cfg (opt/machine/docker/*), once per machine: a later
# daemon-reload (after a certificate regeneration, say) leaves what
# provisioning wrote alone.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
d=/sys/firmware/qemu_fw_cfg/by_name/opt/machine/docker
mark=/var/lib/machine/docker-boot-done
[ -e "$mark" ] && exit 0
[ -d /sys/firmware/qemu_fw_cfg ] || modprobe qemu_fw_cfg 2>/dev/null || true
[ -r "$d/server-key.pem/raw" ] || exit 0
mkdir -p /etc/docker /etc/systemd/system/docker.service.d /var/lib/machine || exit 0
install -m 644 "$d/ca.pem/raw" /etc/docker/ca.pem &&
    install -m 644 "$d/server.pem/raw" /etc/docker/server.pem &&
    install -m 600 "$d/server-key.pem/raw" /etc/docker/server-key.pem &&
    install -m 644 "$d/docker.conf/raw" /etc/systemd/system/docker.service.d/10-machine.conf &&
    : >"$mark"
exit 0
GEN
chmod 755 "$root/usr/local/lib/systemd/system-generators/machine-docker"

# Slim initramfs: only what mounts a virtio disk with ext4.
sed -i 's/^MODULES=.*/MODULES=list/' "$root/etc/initramfs-tools/initramfs.conf"
printf 'virtio_pci\nvirtio_blk\next4\ncrc32c_generic\n' >>"$root/etc/initramfs-tools/modules"

# Drop kernel modules a VM never uses (sound, graphics, wireless, ...).
moddir=$root/lib/modules/$kver/kernel
rm -rf "$moddir/sound" "$moddir/drivers/gpu" "$moddir/drivers/media" "$moddir/drivers/net/wireless" \
    "$moddir/drivers/infiniband" "$moddir/drivers/staging" "$moddir/drivers/bluetooth" "$moddir/drivers/isdn" \
    "$moddir/drivers/net/ethernet" "$moddir/drivers/scsi" "$moddir/drivers/usb" "$moddir/drivers/hwmon" \
    "$moddir/drivers/iio" "$moddir/drivers/mtd" "$moddir/drivers/nfc" "$moddir/drivers/input/touchscreen" \
    "$moddir/drivers/input/joystick" "$moddir/drivers/video" "$moddir/drivers/net/can" "$moddir/net/wireless" \
    "$moddir/net/mac80211" "$moddir/net/bluetooth" "$moddir/drivers/md" "$moddir/drivers/target" \
    "$moddir/drivers/thunderbolt" "$moddir/drivers/firewire" "$moddir/drivers/platform" "$moddir/drivers/hid"

step "system configuration (systemd units)"
in_root systemctl enable systemd-networkd.service machine-init.service >/dev/null 2>&1
in_root systemctl mask serial-getty@ttyS0.service getty@tty1.service apt-daily.timer apt-daily-upgrade.timer \
    e2scrub_all.timer e2scrub_reap.service fstrim.timer >/dev/null 2>&1 || true
# AppArmor stays enabled in the kernel and dockerd loads its own profile when it
# starts; loading the packaged profiles at boot only delays SSH.
in_root systemctl mask apparmor.service >/dev/null 2>&1 || true
# The one link has a static address that systemd-networkd sets at once:
# waiting for it to be "online" only delays what orders itself after
# network-online.target (dockerd) by seconds.
in_root systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1 || true
if [ "$variant" = docker ]; then
    dockerd_path=$(in_root sh -c 'command -v dockerd')
    [ -n "$dockerd_path" ] || die "dockerd is missing from the image"
    # The daemon opens its own socket: no socket activation, which would
    # start the daemon again with its old settings whenever something
    # touches the socket while a provisioner has it stopped.
    sed -e 's/^\(After=.*\) docker\.socket/\1/' -e '/^Requires=docker\.socket/d' \
        -e 's#-H fd://#-H unix:///var/run/docker.sock#' \
        "$root/lib/systemd/system/docker.service" >"$root/etc/systemd/system/docker.service"
    grep -q 'docker\.socket\|fd://' "$root/etc/systemd/system/docker.service" \
        && die "docker.service still depends on docker.socket"
    in_root systemctl mask docker.socket >/dev/null 2>&1
    in_root systemctl enable docker.service >/dev/null 2>&1
    # docker-machine's own provisioners name the daemon /usr/bin/dockerd
    # (Docker's packages); Debian's is in /usr/sbin
    [ -e "$root/usr/bin/dockerd" ] || ln -s "$dockerd_path" "$root/usr/bin/dockerd"
fi

step "system configuration (initramfs)"
mount_pseudo
in_root depmod -a "$kver"
in_root update-initramfs -u -k "$kver" >"$work/initramfs.log" 2>&1 || { tail -n 20 "$work/initramfs.log" >&2; die "update-initramfs failed"; }
umount_pseudo

step "system configuration (cleaning up)"
in_root apt-get clean >/dev/null 2>&1 || true
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log \
    "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old "$root"/tmp/* "$root"/debootstrap
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + 2>/dev/null || true
cp "$root/boot/vmlinuz-$kver" "$work/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$work/initrd.img"

step "file system (mkfs.ext4)"
used_mib=$(du -sxm "$root" | cut -f1)
size_mib=$(( used_mib * 13 / 10 + 256 ))
mkfs.ext4 -q -F -L "$label" -d "$root" -E root_owner=0:0 "$work/root.img" "${size_mib}M"

step "compression (qcow2, zstd)"
if qemu-img convert -c -O qcow2 -o compression_type=zstd "$work/root.img" "$work/disk.qcow2" 2>/dev/null; then
    compression=zstd
else
    qemu-img convert -c -O qcow2 "$work/root.img" "$work/disk.qcow2"
    compression=zlib
fi
rm -f "$work/root.img"

end=$(date +%s)
disk_bytes=$(stat -c %s "$work/disk.qcow2")
pkgver() { in_root dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo none; }
cat >"$work/manifest.json" <<JSON
{
  "name": "machine-debian-12$( [ "$variant" = nodocker ] && echo -nodocker )",
  "variant": "$variant",
  "suite": "$suite",
  "kernel": "$kver",
  "cmdline": "root=/dev/vda rw console=ttyS0,115200 loglevel=4",
  "docker": "$(pkgver docker.io)",
  "dockerd": "${dockerd_path:-}",
  "init_version": $init_version,
  "openssh": "$(pkgver openssh-server)",
  "disk_bytes": $disk_bytes,
  "disk_virtual_mib": $size_mib,
  "root_used_mib": $used_mib,
  "compression": "$compression",
  "build_seconds": $(( end - start )),
  "built_at": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
JSON

step "cache ($out)"
rm -rf "$out.old"
[ -e "$out" ] && mv "$out" "$out.old"
mkdir -p "$out"
mv "$work/disk.qcow2" "$work/vmlinuz" "$work/initrd.img" "$out/"
[ -d "$work/apt-repo" ] && mv "$work/apt-repo" "$out/apt-repo"
mv "$work/manifest.json" "$out/manifest.json"
rm -rf "$out.old"
step "done in $(( end - start )) s: disk.qcow2 $(( disk_bytes / 1048576 )) MiB, initrd $(( $(stat -c %s "$out/initrd.img") / 1024 )) KiB"
