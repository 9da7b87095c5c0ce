#!/usr/bin/env bash
# Throwaway Linux hosts on this machine for end-to-end tests.
#
# Each host is a set of namespaces: network (its own address on a private
# bridge), mount, UTS, IPC and PID, with its own OpenSSH sshd. Inside a host
# /etc is a copy-on-write overlay (hostname, hosts, sudoers.d, docker config
# are private), /run, /tmp and /dev/shm are private tmpfs, /var/log,
# /var/lib/docker and /var/lib/containerd are per-host directories, /sys and
# /proc are fresh and the machine's cgroup hierarchies are mounted again.
# Debian's docker.io is installed but no daemon runs until provisioning starts
# one (there is no init system inside a host).
#
#   testhosts.sh install     install the packages the hosts and tests need
#   testhosts.sh up [N]      bring up N hosts (default 2): mth1..mthN
#                            (tears down running hosts first)
#   testhosts.sh env         print shell variables for tests (eval it)
#   testhosts.sh status      which hosts are up and answer over SSH
#   testhosts.sh down        stop everything, remove namespaces, links, files
#
# State lives in $MT_STATE (default /tmp/machine-testhosts). Addresses are
# $MT_NET.(10+i) (default 10.211.7.(10+i)) on bridge $MT_BRIDGE (default
# mtbr0, address $MT_NET.1); hosts are named $MT_PREFIX<i> (default mth<i>).
# Hosts have no default route: they reach only each other and the bridge.
set -euo pipefail

STATE=${MT_STATE:-/tmp/machine-testhosts}
PREFIX=${MT_PREFIX:-mth}
BRIDGE=${MT_BRIDGE:-mtbr0}
NET=${MT_NET:-10.211.7}
SUDO_USER_NAME=mtuser
SUDOERS_NAME=machine-testhosts
SELF=$(readlink -f "${BASH_SOURCE[0]}")
MAX_HOSTS=200

die() { echo "testhosts: error: $*" >&2; exit 1; }
warn() { echo "testhosts: warning: $*" >&2; }
info() { echo "testhosts: $*" >&2; }
need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

check_config() {
    case "$STATE" in
        /*) ;;
        *) die "MT_STATE must be an absolute path: $STATE" ;;
    esac
    [[ "$STATE" =~ ^[A-Za-z0-9._/-]+$ ]] || die "MT_STATE may only contain letters, digits and ._/-: $STATE"
    [ "$STATE" != / ] || die "MT_STATE must not be /"
    [[ "$PREFIX" =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "MT_PREFIX must be 1-8 lowercase letters/digits, starting with a letter: $PREFIX"
    [[ "$BRIDGE" =~ ^[A-Za-z0-9_-]{1,15}$ ]] || die "MT_BRIDGE is not a valid interface name: $BRIDGE"
    [[ "$NET" =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "MT_NET must be three octets like 10.211.7: $NET"
}

host_name() { echo "$PREFIX$1"; }
host_ip() { echo "$NET.$((10 + $1))"; }
host_veth() { echo "${PREFIX}v$1"; }
host_dir() { echo "$STATE/hosts/$(host_name "$1")"; }

# Indices of the hosts that exist in any form: a network namespace, an outer
# veth or a state directory.
host_indices() {
    {
        ip netns list 2>/dev/null | awk '{print $1}' | sed -n "s/^$PREFIX\([0-9][0-9]*\)\$/\1/p"
        ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
            sed -n "s/^${PREFIX}v\([0-9][0-9]*\)\$/\1/p"
        if [ -d "$STATE/hosts" ]; then
            ls "$STATE/hosts" | sed -n "s/^$PREFIX\([0-9][0-9]*\)\$/\1/p"
        fi
    } | sort -n -u
}

# Indices of the hosts listed as up by the last `up`.
listed_indices() {
    [ -f "$STATE/hosts.list" ] || return 0
    awk '{print $1}' "$STATE/hosts.list"
}

lock_state() {
    mkdir -p "$STATE"
    exec 9>"$STATE/.lock"
    flock -w 300 9 || die "another testhosts.sh holds $STATE/.lock"
}

ssh_to() {
    local user=$1 ip=$2
    shift 2
    ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$STATE/known_hosts" \
        -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=3 -o IdentitiesOnly=yes \
        -o LogLevel=ERROR -i "$STATE/id_ed25519" "$user@$ip" "$@"
}

# ---------------------------------------------------------------- install

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# sshd, dockerd and containerd processes running in this (the machine's) network
# and mount namespaces.
machine_daemons() {
    local p exe
    for p in /proc/[0-9]*; do
        exe=$(readlink "$p/exe" 2>/dev/null) || continue
        case "$exe" in
            /usr/sbin/sshd | /usr/sbin/dockerd | /usr/bin/dockerd | /usr/bin/containerd) ;;
            *) continue ;;
        esac
        [ "$(readlink "$p/ns/net" 2>/dev/null)" = "$(readlink /proc/self/ns/net)" ] || continue
        [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$(readlink /proc/self/ns/mnt)" ] || continue
        echo "${p#/proc/}"
    done
}

cmd_install() {
    need_root
    # tcsh, fish and zsh are for the shell-environment tests.
    local pkgs=(openssh-server openssh-client docker.io containerd runc tini iproute2 util-linux
        sudo busybox-static rsync procps psmisc openssl tcsh fish zsh)
    local missing=() p
    export DEBIAN_FRONTEND=noninteractive
    for p in "${pkgs[@]}"; do pkg_installed "$p" || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ] || ! pkg_installed sshfs; then
        apt-get -o DPkg::Lock::Timeout=300 update -qq || die "apt-get update failed"
    fi
    if ! pkg_installed sshfs; then
        if apt-cache show sshfs >/dev/null 2>&1; then
            missing+=(sshfs)
        else
            warn "sshfs is not available from the configured package sources; skipping it"
        fi
    fi
    if [ ${#missing[@]} -eq 0 ]; then
        info "all packages present"
    else
        info "installing ${missing[*]}"
        local before policy_added=0
        before=" $(machine_daemons | tr '\n' ' ') "
        # Keep maintainer scripts from starting services where there is no
        # systemd to ask (invoke-rc.d consults policy-rc.d).
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            policy_added=1
            trap 'rm -f /usr/sbin/policy-rc.d' EXIT
        fi
        local rc=0
        apt-get -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef \
            -o Dpkg::Options::=--force-confold install -y -qq --no-install-recommends \
            "${missing[@]}" > "/tmp/testhosts-apt.$$.log" 2>&1 || rc=$?
        if [ $policy_added = 1 ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
        if [ $rc != 0 ]; then
            tail -n 30 "/tmp/testhosts-apt.$$.log" >&2
            rm -f "/tmp/testhosts-apt.$$.log"
            die "apt-get install failed (exit $rc)"
        fi
        rm -f "/tmp/testhosts-apt.$$.log"
        # Services of the packages installed just now must be neither running
        # nor enabled on the machine; services that were there before are left
        # as they were.
        local units=() pkg
        for pkg in "${missing[@]}"; do
            case "$pkg" in
                openssh-server) units+=(ssh.service ssh.socket) ;;
                docker.io) units+=(docker.service docker.socket) ;;
                containerd) units+=(containerd.service) ;;
            esac
        done
        if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
            [ ${#units[@]} -eq 0 ] || systemctl disable --now "${units[@]}" >/dev/null 2>&1 || true
        else
            local u
            for u in "${units[@]}"; do
                case "$u" in *.service) ;; *) continue ;; esac
                u=${u%.service}
                [ -e "/etc/init.d/$u" ] && update-rc.d "$u" disable >/dev/null 2>&1 || true
            done
        fi
        local pid
        for pid in $(machine_daemons); do
            case "$before" in *" $pid "*) continue ;; esac
            warn "stopping $(readlink "/proc/$pid/exe" 2>/dev/null || echo '?') (pid $pid) started by package installation"
            kill "$pid" 2>/dev/null || true
        done
    fi
    for p in "${pkgs[@]}"; do pkg_installed "$p" || die "$p is still not installed"; done
    # Installing docker.io where no init system starts the daemon leaves these
    # out; every host bind-mounts its own directories over them.
    mkdir -p /var/lib/docker /var/lib/containerd
    chmod 710 /var/lib/docker
    # Every program the hosts and tests run must run, not just be installed.
    local broken=() c
    for c in "/usr/sbin/sshd -V" "ssh -V" "ssh-keygen -l -f /dev/null -E sha256" "dockerd --version" \
        "containerd --version" "runc --version" "tini --version" "docker --version" "sudo -V" \
        "/bin/busybox true" "rsync --version" "openssl version" "tcsh -c true" "fish -c true" "zsh -c true"; do
        # ssh-keygen -l on an empty file fails by design; only its presence counts
        case $c in ssh-keygen*) command -v ssh-keygen >/dev/null || broken+=("ssh-keygen"); continue ;; esac
        $c >/dev/null 2>&1 || broken+=("${c%% *}")
    done
    [ -d /var/lib/docker ] && [ -d /var/lib/containerd ] || broken+=(/var/lib/docker)
    [ ${#broken[@]} -eq 0 ] || die "installed, but these do not run: ${broken[*]} (apt-get install --reinstall the package that provides each)"
    ensure_user
    info "install done"
}

# The non-root test user: exists on the machine, has no password but is not
# locked (sshd without PAM refuses locked accounts). Its sudo rights exist only
# inside the hosts (see cmd__init).
ensure_user() {
    if ! id "$SUDO_USER_NAME" >/dev/null 2>&1; then
        useradd -m -s /bin/bash "$SUDO_USER_NAME" || die "useradd $SUDO_USER_NAME failed"
    fi
    local pw
    pw=$(getent shadow "$SUDO_USER_NAME" | cut -d: -f2)
    case "$pw" in
        '!'* | '') usermod -p '*' "$SUDO_USER_NAME" ;;
    esac
}

# ---------------------------------------------------------------- up

# Runs as the first child of the host's init (tini), inside the host's network,
# mount, UTS, IPC and PID namespaces: builds the private file system view,
# starts sshd and stays as the host's long-running process.
cmd__init() {
    local name=$1 ip=$2
    local d=$STATE/hosts/$name
    exec >> "$d/init.log" 2>&1
    echo "init: $name $ip (pid $$)"
    hostname "$name"

    # A sysfs of this network namespace, then the cgroup hierarchies (and any
    # other file system mounted below /sys) as they are mounted outside.
    umount -l /sys
    mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
    local src mnt fstype opts rest
    while read -r src mnt fstype opts rest; do
        case "$mnt" in /sys/*) ;; *) continue ;; esac
        [ -d "$mnt" ] || mkdir -p "$mnt" 2>/dev/null || true
        if ! mount -t "$fstype" -o "$opts" "$src" "$mnt"; then
            case "$fstype" in
                cgroup | cgroup2) echo "init: cannot mount $fstype at $mnt"; exit 1 ;;
                *) echo "init: skipping $fstype at $mnt" ;;
            esac
        fi
    done < "$STATE/sys-mounts"

    # Per-host directories (bound before /tmp is replaced: the state may be there).
    mount --bind "$d/var-log" /var/log
    mount --bind "$d/var-lib-docker" /var/lib/docker
    if [ -d /var/lib/containerd ]; then mount --bind "$d/var-lib-containerd" /var/lib/containerd; fi
    mount -t overlay overlay -o "lowerdir=/etc,upperdir=$d/etc-upper,workdir=$d/etc-work" /etc

    # The copied mount table holds the machine's namespace handles
    # (/run/netns/*, nsfs): drop them, or a deleted network namespace of
    # another host would stay alive as long as this host runs.
    local m
    for m in $(awk '$3 == "nsfs" || $2 ~ "^/run/" {print $2}' /proc/self/mounts | sort -r -u); do
        umount -l "$m" 2>/dev/null || true
    done
    mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
    mkdir -m 755 /run/sshd /run/lock /run/mt-state
    if [ -d /var/run ] && [ ! -L /var/run ]; then mount --bind /run /var/run; fi
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm

    # Private /tmp; the state directory stays visible (read-only) at its path.
    mount --bind "$STATE" /run/mt-state
    mount -o remount,bind,ro /run/mt-state
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
    mkdir -p "$STATE" 2>/dev/null || true
    if [ -d "$STATE" ]; then
        mount --move /run/mt-state "$STATE"
        rmdir /run/mt-state 2>/dev/null || true
    else
        echo "init: state directory $STATE not reachable inside the host"; exit 1
    fi

    echo "$name" > /etc/hostname
    {
        grep -v -E '^[[:space:]]*127\.0\.1\.1[[:space:]]' /etc/hosts || true
        echo "127.0.1.1 $name"
    } > /etc/hosts.new
    cat /etc/hosts.new > /etc/hosts
    rm -f /etc/hosts.new
    # No name server: a host has no route off the test bridge anyway, and a
    # lookup must fail at once instead of trying the machine's resolver.
    rm -f /etc/resolv.conf
    printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' > /etc/resolv.conf
    mkdir -p /etc/sudoers.d
    echo "$SUDO_USER_NAME ALL=(ALL) NOPASSWD:ALL" > "/etc/sudoers.d/$SUDOERS_NAME"
    chmod 440 "/etc/sudoers.d/$SUDOERS_NAME"

    /usr/sbin/sshd -f "$d/sshd_config" -E /var/log/sshd.log
    echo "init: sshd started"
    exec sleep infinity
}

write_sshd_config() {
    local i=$1 d usepam=no
    d=$(host_dir "$i")
    # Without PAM sshd refuses accounts whose password is locked ('!').
    case "$(getent shadow root | cut -d: -f2)" in '!'*) usepam=yes ;; esac
    cat > "$d/sshd_config" <<CONF
# sshd of test host $(host_name "$i"); generated by testhosts.sh
Port 22
ListenAddress 0.0.0.0
AddressFamily inet
HostKey $d/ssh_host_ed25519_key
PidFile /run/sshd.pid
AuthorizedKeysFile $STATE/authorized_keys $d/authorized_keys/%u
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM $usepam
UseDNS no
PrintMotd no
Subsystem sftp internal-sftp
MaxSessions 64
MaxStartups 64:30:128
AcceptEnv LANG LC_*
CONF
}

prepare_host() {
    local i=$1 d name
    d=$(host_dir "$i")
    name=$(host_name "$i")
    mkdir -p "$d"/{var-log,var-lib-docker,var-lib-containerd,etc-upper,etc-work,authorized_keys}
    ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$d/ssh_host_ed25519_key" </dev/null
    ssh-keygen -l -f "$d/ssh_host_ed25519_key.pub" > "$d/ssh_host_ed25519_key.fp"
    cp "$STATE/id_ed25519.pub" "$d/authorized_keys/root"
    cp "$STATE/id_ed25519.pub" "$d/authorized_keys/$SUDO_USER_NAME"
    chmod 644 "$d"/authorized_keys/*
    : > "$d/init.log"
    write_sshd_config "$i"
}

start_host() {
    local i=$1 d name ip veth
    d=$(host_dir "$i")
    name=$(host_name "$i")
    ip=$(host_ip "$i")
    veth=$(host_veth "$i")
    ip netns add "$name"
    ip link add "$veth" type veth peer name eth0 netns "$name"
    sysctl -qw "net.ipv6.conf.$veth.disable_ipv6=1" || true
    ip link set "$veth" master "$BRIDGE" up
    nsenter --net="/run/netns/$name" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 || true
    ip -n "$name" link set lo up
    ip -n "$name" addr add "$ip/24" dev eth0
    ip -n "$name" link set eth0 up
    # unshare stays outside as the parent; tini is pid 1 of the host (it reaps
    # orphans such as a dockerd whose ssh session has ended) and --kill-child
    # takes the whole host down with the launcher.
    setsid nsenter --net="/run/netns/$name" -- \
        unshare --mount --uts --ipc --pid --fork --kill-child=SIGKILL --mount-proc --propagation private -- \
        /usr/bin/tini -- /bin/bash "$SELF" __init "$name" "$ip" \
        < /dev/null >> "$d/init.log" 2>&1 9>&- &
    echo $! > "$d/launcher.pid"
}

wait_host() {
    local i=$1 d ip name
    d=$(host_dir "$i")
    ip=$(host_ip "$i")
    name=$(host_name "$i")
    for _ in $(seq 1 100); do
        if ssh_to root "$ip" true 2>/dev/null; then
            ssh_to "$SUDO_USER_NAME" "$ip" sudo -n true 2>/dev/null && return 0
            echo "$name: $SUDO_USER_NAME cannot log in or sudo" >&2
            return 1
        fi
        if ! kill -0 "$(cat "$d/launcher.pid")" 2>/dev/null; then
            echo "$name: the host's init exited" >&2
            break
        fi
        sleep 0.1
    done
    echo "--- $name init.log:" >&2
    tail -n 20 "$d/init.log" >&2 || true
    echo "--- $name sshd.log:" >&2
    tail -n 20 "$d/var-log/sshd.log" >&2 || true
    return 1
}

cmd_up() {
    need_root
    local n=${1:-2}
    [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le $MAX_HOSTS ] || die "host count must be 1..$MAX_HOSTS: $n"
    local start
    start=$(date +%s.%N)
    lock_state
    for c in ip nsenter unshare setsid flock ssh ssh-keygen; do command -v "$c" >/dev/null || die "$c is missing: run '$0 install'"; done
    [ -x /usr/sbin/sshd ] || die "sshd is not installed: run '$0 install'"
    [ -x /usr/bin/tini ] || die "tini is not installed: run '$0 install'"
    command -v dockerd >/dev/null || die "docker.io is not installed: run '$0 install'"
    [ -d /var/lib/docker ] || die "/var/lib/docker is missing: run '$0 install'"
    ensure_user

    teardown
    mkdir -p "$STATE/hosts"
    chmod 755 "$STATE" "$STATE/hosts"
    grep -E '^[^ ]+ /sys/[^ ]+ ' /proc/self/mounts > "$STATE/sys-mounts" || true
    grep -qE ' (cgroup|cgroup2) ' "$STATE/sys-mounts" || die "no cgroup file system is mounted below /sys on this machine"
    if [ ! -f "$STATE/id_ed25519" ]; then
        ssh-keygen -q -t ed25519 -N '' -C machine-testhosts -f "$STATE/id_ed25519" </dev/null
    fi
    chmod 600 "$STATE/id_ed25519"
    cp "$STATE/id_ed25519.pub" "$STATE/authorized_keys"
    chmod 644 "$STATE/authorized_keys" "$STATE/id_ed25519.pub"

    ip link add "$BRIDGE" type bridge
    sysctl -qw "net.ipv6.conf.$BRIDGE.disable_ipv6=1" || true
    ip addr add "$NET.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up

    local i
    : > "$STATE/known_hosts"
    : > "$STATE/hosts.list"
    for i in $(seq 1 "$n"); do
        prepare_host "$i"
        echo "$(host_ip "$i") $(cut -d' ' -f1-2 "$(host_dir "$i")/ssh_host_ed25519_key.pub")" >> "$STATE/known_hosts"
    done
    for i in $(seq 1 "$n"); do start_host "$i"; done
    local pids=() failed=0
    for i in $(seq 1 "$n"); do wait_host "$i" & pids+=($!); done
    for i in "${pids[@]}"; do wait "$i" || failed=1; done
    if [ $failed != 0 ]; then
        teardown
        die "some hosts did not come up (see above); everything was torn down again"
    fi
    for i in $(seq 1 "$n"); do echo "$i $(host_name "$i") $(host_ip "$i")" >> "$STATE/hosts.list"; done
    info "$n host(s) up in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}') s: $(awk '{printf "%s ", $3}' "$STATE/hosts.list")"
}

# ---------------------------------------------------------------- down

# The pid-1 (tini) process of host $1's PID namespace, from the launcher.
host_init_pid() {
    local lp=$1 c
    for c in $(cat "/proc/$lp/task/$lp/children" 2>/dev/null); do
        echo "$c"
        return 0
    done
}

# Every process whose network namespace is host $1's.
netns_pids() { ip netns pids "$1" 2>/dev/null || true; }

stop_host() {
    local i=$1 d name veth lp init p left
    d=$(host_dir "$i")
    name=$(host_name "$i")
    veth=$(host_veth "$i")
    # Killing pid 1 of a PID namespace kills every process in it, including
    # containers (their PID namespaces are nested in the host's).
    if [ -f "$d/launcher.pid" ]; then
        lp=$(cat "$d/launcher.pid")
        if grep -qa "__init" "/proc/$lp/cmdline" 2>/dev/null; then
            init=$(host_init_pid "$lp")
            [ -z "$init" ] || kill -KILL "$init" 2>/dev/null || true
            kill -KILL "$lp" 2>/dev/null || true
        fi
    fi
    if [ -e "/run/netns/$name" ]; then
        # Anything else in the host's network namespace: PID-namespace inits
        # first (same effect as above), then the rest.
        for p in $(netns_pids "$name"); do
            if awk '/^NSpid:/ { exit !(NF > 2 && $3 == 1) }' "/proc/$p/status" 2>/dev/null; then
                kill -KILL "$p" 2>/dev/null || true
            fi
        done
        for _ in $(seq 1 100); do
            left=$(netns_pids "$name")
            [ -n "$left" ] || break
            kill -KILL $left 2>/dev/null || true
            sleep 0.05
        done
        left=$(netns_pids "$name")
        [ -z "$left" ] || { warn "$name: processes survive: $left"; return 1; }
        ip netns del "$name" || { warn "$name: cannot delete the network namespace"; return 1; }
    fi
    if ip link show "$veth" >/dev/null 2>&1; then ip link del "$veth" 2>/dev/null || true; fi
    # wait for the launcher (it exits once the host's init is gone)
    if [ -n "${lp:-}" ]; then
        for _ in $(seq 1 100); do
            grep -qa "__init" "/proc/$lp/cmdline" 2>/dev/null || break
            sleep 0.05
        done
    fi
    return 0
}

teardown() {
    local i failed=0
    for i in $(host_indices); do stop_host "$i" || failed=1; done
    if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE" || failed=1; fi
    [ $failed = 0 ] || die "teardown incomplete (see above)"
    # Mounts were made in the hosts' own mount namespaces only; nothing of
    # ours may stay mounted on the machine below the state directory.
    if [ -d "$STATE/hosts" ]; then
        if grep -qF " $STATE/hosts/" /proc/self/mounts; then
            die "mounts below $STATE/hosts remain on the machine: $(grep -F " $STATE/hosts/" /proc/self/mounts | awk '{print $2}' | tr '\n' ' ')"
        fi
        # Keep the logs of the last run for post-mortems.
        local h
        rm -rf "$STATE/last-logs"
        for h in "$STATE"/hosts/*/; do
            [ -d "$h" ] || continue
            h=${h%/}
            mkdir -p "$STATE/last-logs/${h##*/}"
            cp -a "$h/init.log" "$h/var-log" "$STATE/last-logs/${h##*/}/" 2>/dev/null || true
        done
        rm -rf "$STATE/hosts" || die "cannot remove $STATE/hosts"
    fi
    rm -f "$STATE/hosts.list" "$STATE/known_hosts" "$STATE/sys-mounts"
}

cmd_down() {
    need_root
    [ -d "$STATE" ] || mkdir -p "$STATE"
    lock_state
    teardown
    info "down"
}

# ---------------------------------------------------------------- env, status

cmd_env() {
    [ -s "$STATE/hosts.list" ] || die "no test hosts are up (run: $0 up [N])"
    local ips names keys fps
    ips=$(awk '{print $3}' "$STATE/hosts.list" | paste -sd' ' -)
    names=$(awk '{print $2}' "$STATE/hosts.list" | paste -sd' ' -)
    keys=$(awk -v s="$STATE" '{printf "%s/hosts/%s/ssh_host_ed25519_key.pub\n", s, $2}' "$STATE/hosts.list" | paste -sd' ' -)
    fps=$(awk -v s="$STATE" '{printf "%s/hosts/%s/ssh_host_ed25519_key.fp\n", s, $2}' "$STATE/hosts.list" | paste -sd' ' -)
    cat <<ENV
export MT_STATE="$STATE"
export MT_HOSTS="$ips"
export MT_HOST_NAMES="$names"
export MT_KEY="$STATE/id_ed25519"
export MT_USER_SUDO="$SUDO_USER_NAME"
export MT_SUDO_USER="$SUDO_USER_NAME"
export MT_AUTHORIZED_KEYS="$STATE/authorized_keys"
export MT_KNOWN_HOSTS="$STATE/known_hosts"
export MT_HOST_KEYS="$keys"
export MT_HOST_FINGERPRINTS="$fps"
ENV
}

cmd_status() {
    if [ ! -s "$STATE/hosts.list" ]; then
        local stray
        stray=$(host_indices | paste -sd' ' -)
        [ -z "$stray" ] || { echo "no hosts listed as up, but leftovers exist for index(es): $stray (run: $0 down)"; return 1; }
        echo "no hosts up"
        return 1
    fi
    local i name ip bad=0 ns ssh_root ssh_user
    while read -r i name ip; do
        ns=no ssh_root=no ssh_user=no
        [ -e "/run/netns/$name" ] && ns=yes
        ssh_to root "$ip" true </dev/null 2>/dev/null && ssh_root=yes
        ssh_to "$SUDO_USER_NAME" "$ip" sudo -n true </dev/null 2>/dev/null && ssh_user=yes
        printf '%-8s %-15s netns=%-3s ssh-root=%-3s ssh-%s-sudo=%s\n' "$name" "$ip" "$ns" "$ssh_root" "$SUDO_USER_NAME" "$ssh_user"
        [ "$ns$ssh_root$ssh_user" = yesyesyes ] || bad=1
    done < "$STATE/hosts.list"
    return $bad
}

usage() { sed -n '2,23p' "$SELF" | sed 's/^# \{0,1\}//'; }

check_config
case "${1:-}" in
    install) cmd_install ;;
    up) shift; cmd_up "${1:-2}" ;;
    down) cmd_down ;;
    env) cmd_env ;;
    status) cmd_status ;;
    __init) shift; cmd__init "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
esac
