#!/usr/bin/env bash
# Throwaway Linux hosts on this machine for end-to-end tests.
#
# Each host is a network namespace (its own address on a private bridge) with
# its own mount and UTS namespaces: private /run, /etc/docker, /var/lib/docker,
# /var/log, /etc/hosts, /etc/hostname and /etc/sudoers.d, its own hostname and
# its own OpenSSH sshd. Debian's docker.io is installed but no daemon runs until
# provisioning starts one (there is no init system inside a host).
#
#   testhosts.sh install     install the packages the hosts and tests need
#   testhosts.sh up [N]      bring up N hosts (default 2): mth1..mthN
#   testhosts.sh env         print MT_HOSTS, MT_KEY, MT_SUDO_USER, MT_STATE
#   testhosts.sh status      which hosts answer over SSH
#   testhosts.sh down        stop everything and remove namespaces, links, mounts
#
# State lives in $MT_STATE (default /tmp/machine-testhosts). Addresses are
# 10.211.7.(10+i) on bridge mtbr0 (10.211.7.1); nothing else on the machine's
# network is touched.
set -euo pipefail

STATE=${MT_STATE:-/tmp/machine-testhosts}
BRIDGE=mtbr0
NET=10.211.7
SUDO_USER_NAME=mtuser

die() { echo "testhosts: $*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

cmd_install() {
    need_root
    local pkgs=(openssh-server openssh-client docker.io busybox-static rsync sshfs sudo iproute2 procps psmisc util-linux tcsh fish zsh)
    local missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "testhosts: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    # Package scripts may have started services; this machine's own sshd and
    # dockerd are not ours to run.
    for svc in ssh docker containerd; do
        if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
            systemctl disable --now "$svc" >/dev/null 2>&1 || true
        else
            service "$svc" stop >/dev/null 2>&1 || true
        fi
    done
    id "$SUDO_USER_NAME" >/dev/null 2>&1 || useradd -m -s /bin/bash "$SUDO_USER_NAME"
    # A '*' password: no password login, but not a locked account (sshd refuses those).
    usermod -p '*' "$SUDO_USER_NAME"
    command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || die "sshd missing after install"
    command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || die "dockerd missing after install"
}

host_ip() { echo "$NET.$((10 + $1))"; }

# Runs inside the host's namespaces (network, mount, UTS): set up the private
# file system view and start sshd.
cmd__init() {
    local i=$1 d=$STATE/hosts/mth$1
    hostname "mth$i"
    # ip netns exec mounted a fresh /sys: give dockerd the cgroup hierarchies.
    mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
    while read -r _ mnt fstype opts _; do
        case "$mnt" in /sys/fs/cgroup/*) ;; *) continue ;; esac
        mkdir -p "$mnt"
        if [ "$fstype" = cgroup2 ]; then
            mount -t cgroup2 none "$mnt"
        else
            local sub
            sub=$(echo "$opts" | tr ',' '\n' | grep -vE '^(rw|ro|relatime|nosuid|nodev|noexec)$' | paste -sd, -)
            mount -t cgroup -o "$sub" cgroup "$mnt"
        fi
    done < "$STATE/host-mounts"
    if ! grep -q "/sys/fs/cgroup/" "$STATE/host-mounts"; then
        # a pure cgroup2 machine
        mount -t cgroup2 none /sys/fs/cgroup
    fi
    mount --bind "$d/run" /run
    mkdir -p /run/sshd /run/lock
    mount --bind "$d/etc-docker" /etc/docker
    mkdir -p /var/lib/docker
    mount --bind "$d/var-lib-docker" /var/lib/docker
    mount --bind "$d/log" /var/log
    mount --bind "$d/hosts" /etc/hosts
    mount --bind "$d/hostname" /etc/hostname
    mount --bind "$d/sudoers.d" /etc/sudoers.d
    /usr/sbin/sshd -f "$d/sshd_config" -E "$d/sshd.log"
}

cmd_up() {
    need_root
    local n=${1:-2}
    [ "$n" -ge 1 ] && [ "$n" -le 200 ] || die "host count must be 1..200"
    cmd_down >/dev/null 2>&1 || true
    command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || die "docker.io is not installed: run '$0 install'"
    mkdir -p "$STATE/hosts"
    chmod 755 "$STATE"
    grep -E ' /sys/fs/cgroup' /proc/mounts > "$STATE/host-mounts" || true
    if [ ! -f "$STATE/id_ed25519" ]; then
        ssh-keygen -q -t ed25519 -N '' -C machine-tests -f "$STATE/id_ed25519"
    fi
    chmod 600 "$STATE/id_ed25519"
    cp "$STATE/id_ed25519.pub" "$STATE/authorized_keys"
    chmod 644 "$STATE/authorized_keys"

    ip link add "$BRIDGE" type bridge
    ip addr add "$NET.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    : > "$STATE/known_hosts"
    local i
    for i in $(seq 1 "$n"); do
        local h=mth$i d=$STATE/hosts/mth$i ip
        ip=$(host_ip "$i")
        rm -rf "$d"
        mkdir -p "$d"/{run,etc-docker,var-lib-docker,log,sudoers.d}
        { grep -v "^127.0.1.1" /etc/hosts; echo "127.0.1.1 $h"; } > "$d/hosts"
        echo "$h" > "$d/hostname"
        echo "$SUDO_USER_NAME ALL=(ALL) NOPASSWD:ALL" > "$d/sudoers.d/$SUDO_USER_NAME"
        chmod 440 "$d/sudoers.d/$SUDO_USER_NAME"
        ssh-keygen -q -t ed25519 -N '' -f "$d/ssh_host_ed25519_key"
        cat > "$d/sshd_config" <<CONF
Port 22
ListenAddress $ip
HostKey $d/ssh_host_ed25519_key
PidFile /run/sshd.pid
AuthorizedKeysFile $STATE/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
Subsystem sftp internal-sftp
MaxSessions 64
MaxStartups 64:30:128
AcceptEnv LANG LC_*
CONF
        ip netns add "$h"
        ip link add "mtv$i" type veth peer name eth0 netns "$h"
        ip link set "mtv$i" master "$BRIDGE" up
        ip -n "$h" addr add "$ip/24" dev eth0
        ip -n "$h" link set eth0 up
        ip -n "$h" link set lo up
        ip netns exec "$h" unshare --mount --uts --propagation private --fork \
            bash "$(readlink -f "$0")" _init "$i"
        echo "$ip $(cut -d' ' -f1-2 "$d/ssh_host_ed25519_key.pub")" >> "$STATE/known_hosts"
    done
    # wait until every sshd answers
    for i in $(seq 1 "$n"); do
        local ip ok=0 t
        ip=$(host_ip "$i")
        for t in $(seq 1 50); do
            if ssh_to root "$ip" true 2>/dev/null; then ok=1; break; fi
            sleep 0.1
        done
        [ $ok = 1 ] || { cat "$STATE/hosts/mth$i/sshd.log" >&2; die "sshd on mth$i ($ip) does not answer"; }
    done
    echo "testhosts: $n host(s) up: $(for i in $(seq 1 "$n"); do printf '%s ' "$(host_ip "$i")"; done)"
}

ssh_to() {
    local user=$1 ip=$2
    shift 2
    ssh -o BatchMode=yes -o UserKnownHostsFile="$STATE/known_hosts" -o StrictHostKeyChecking=yes \
        -o ConnectTimeout=3 -o IdentitiesOnly=yes -i "$STATE/id_ed25519" "$user@$ip" "$@"
}

hosts_up() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^mth[0-9]+$' | sort -V || true; }

cmd_env() {
    local ips=()
    for h in $(hosts_up); do ips+=("$(host_ip "${h#mth}")"); done
    echo "MT_HOSTS=\"${ips[*]}\""
    echo "MT_KEY=\"$STATE/id_ed25519\""
    echo "MT_SUDO_USER=\"$SUDO_USER_NAME\""
    echo "MT_STATE=\"$STATE\""
    echo "MT_KNOWN_HOSTS=\"$STATE/known_hosts\""
}

cmd_status() {
    local h
    for h in $(hosts_up); do
        local ip
        ip=$(host_ip "${h#mth}")
        if ssh_to root "$ip" true 2>/dev/null; then echo "$h $ip up"; else echo "$h $ip no-ssh"; fi
    done
}

cmd_down() {
    need_root
    local h
    for h in $(hosts_up); do
        local pids
        pids=$(ip netns pids "$h" 2>/dev/null || true)
        [ -n "$pids" ] && kill -TERM $pids 2>/dev/null || true
    done
    sleep 0.5
    for h in $(hosts_up); do
        local pids
        pids=$(ip netns pids "$h" 2>/dev/null || true)
        [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
        ip netns del "$h" 2>/dev/null || true
    done
    ip link del "$BRIDGE" 2>/dev/null || true
    # dockerd's data may hold read-only layers; the namespaces are gone, so are their mounts
    if [ -d "$STATE/hosts" ]; then rm -rf "$STATE/hosts" 2>/dev/null || true; fi
    echo "testhosts: down"
}

case "${1:-}" in
    install) cmd_install ;;
    up) shift; cmd_up "${1:-2}" ;;
    env) cmd_env ;;
    status) cmd_status ;;
    down) cmd_down ;;
    _init) shift; cmd__init "$1" ;;
    *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
