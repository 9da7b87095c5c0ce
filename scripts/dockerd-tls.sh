#!/usr/bin/env bash
# Run a real dockerd (Debian's docker.io) with mutual TLS for certificate
# tests, without touching the machine's own Docker or network setup:
#
#   dockerd-tls.sh start DIR PORT   DIR holds ca.pem, server.pem, server-key.pem
#   dockerd-tls.sh stop DIR
#
# The daemon runs in its own mount namespace with a private /run (so it starts
# its own containerd instead of using the machine's), a private /etc/docker
# (DIR/etc-docker; dockerd writes key.json there), data root DIR/data, exec
# root DIR/exec, no bridge, no iptables rules. It listens on
# tcp://127.0.0.1:PORT (TLS, client certificates required) and on
# unix://DIR/docker.sock (no TLS). The log is DIR/dockerd.log.
# `start` replaces a daemon already running for DIR and waits up to
# $MT_DOCKERD_TIMEOUT seconds (default 60) for it to answer.
set -euo pipefail

die() { echo "dockerd-tls: error: $*" >&2; exit 1; }
info() { echo "dockerd-tls: $*" >&2; }
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

TIMEOUT=${MT_DOCKERD_TIMEOUT:-60}

# The pid in DIR/dockerd.pid if that process is still our dockerd.
running_pid() {
    local dir=$1 pid
    [ -f "$dir/dockerd.pid" ] || return 1
    pid=$(cat "$dir/dockerd.pid")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 1
    tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$dir/data" || return 1
    echo "$pid"
}

# Processes in the daemon's private mount namespace (dockerd, containerd,
# shims) as recorded at start.
mntns_pids() {
    local dir=$1 ns p
    [ -f "$dir/mntns" ] || return 0
    ns=$(cat "$dir/mntns")
    [ -n "$ns" ] || return 0
    # never the machine's own mount namespace
    [ "$ns" != "$(readlink /proc/self/ns/mnt)" ] || return 0
    [ "$ns" != "$(readlink /proc/1/ns/mnt)" ] || return 0
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$ns" ] && echo "${p#/proc/}"
    done
    return 0
}

client() {
    # The machine's docker client, without any environment that points it elsewhere.
    env -u DOCKER_HOST -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH -u DOCKER_CONTEXT \
        docker "$@"
}

start() {
    [ $# -eq 2 ] || usage
    [ "$(id -u)" = 0 ] || die "must run as root"
    local dir port
    [ -d "$1" ] || die "no such directory: $1"
    dir=$(readlink -f "$1")
    port=$2
    [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "bad port: $port"
    local f
    for f in ca.pem server.pem server-key.pem; do
        [ -s "$dir/$f" ] || die "missing $dir/$f"
    done
    command -v dockerd >/dev/null || die "dockerd is not installed (apt-get install docker.io)"
    command -v docker >/dev/null || die "the docker client is not installed (apt-get install docker.io)"
    # Unix socket paths are limited to 107 bytes (containerd's sockets live in exec/).
    [ ${#dir} -le 60 ] || die "DIR path is too long for unix sockets (max 60 characters): $dir"
    if [ -n "$(running_pid "$dir" || true)" ] || [ -n "$(mntns_pids "$dir")" ]; then
        info "replacing the daemon already running for $dir"
        stop "$dir"
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "127.0.0.1:$port is already in use"
    fi

    mkdir -p "$dir/data" "$dir/exec" "$dir/etc-docker"
    rm -f "$dir/docker.sock" "$dir/dockerd.pid" "$dir/mntns"
    [ -f "$dir/daemon.json" ] || echo '{}' > "$dir/daemon.json"
    : > "$dir/dockerd.log"

    # unshare execs the shell, the shell execs dockerd: $! is dockerd's pid.
    # The copied mount table holds the machine's namespace handles (nsfs, e.g.
    # /run/netns/*); they are dropped so this daemon does not keep deleted
    # network namespaces alive.
    setsid unshare --mount --propagation private -- /bin/bash -c '
        set -euo pipefail
        dir=$1 port=$2
        for m in $(awk '\''$3 == "nsfs" || $2 ~ "^/run/" {print $2}'\'' /proc/self/mounts | sort -r -u); do
            umount -l "$m" 2>/dev/null || true
        done
        mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
        mkdir -p /run/lock
        if [ -d /var/run ] && [ ! -L /var/run ]; then mount --bind /run /var/run; fi
        mkdir -p /etc/docker
        mount --bind "$dir/etc-docker" /etc/docker
        exec dockerd \
            --config-file "$dir/daemon.json" \
            --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
            --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
            --shutdown-timeout 5 \
            -H "tcp://127.0.0.1:$port" -H "unix://$dir/docker.sock" \
            --tlsverify --tlscacert "$dir/ca.pem" --tlscert "$dir/server.pem" --tlskey "$dir/server-key.pem"
    ' dockerd-tls "$dir" "$port" < /dev/null >> "$dir/dockerd.log" 2>&1 &
    local pid=$! ns
    local t=0 deadline=$((TIMEOUT * 10))
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "--- $dir/dockerd.log (last 30 lines):" >&2
            tail -n 30 "$dir/dockerd.log" >&2
            stop "$dir" >/dev/null 2>&1 || true
            die "dockerd exited during start-up"
        fi
        if [ ! -s "$dir/mntns" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
            # recorded only once dockerd runs, i.e. inside its own namespace
            ns=$(readlink "/proc/$pid/ns/mnt" 2>/dev/null || true)
            [ -z "$ns" ] || [ "$ns" = "$(readlink /proc/self/ns/mnt)" ] || echo "$ns" > "$dir/mntns"
        fi
        if [ -S "$dir/docker.sock" ] && client -H "unix://$dir/docker.sock" version >/dev/null 2>&1; then
            break
        fi
        t=$((t + 1))
        if [ $t -ge $deadline ]; then
            echo "--- $dir/dockerd.log (last 30 lines):" >&2
            tail -n 30 "$dir/dockerd.log" >&2
            stop "$dir" >/dev/null 2>&1 || true
            die "dockerd did not answer on unix://$dir/docker.sock within $TIMEOUT s"
        fi
        sleep 0.1
    done
    [ "$(cat "$dir/dockerd.pid" 2>/dev/null)" = "$pid" ] || echo "$pid" > "$dir/dockerd.pid"
    info "dockerd (pid $pid) up on tcp://127.0.0.1:$port and unix://$dir/docker.sock"
}

stop() {
    [ $# -eq 1 ] || usage
    [ "$(id -u)" = 0 ] || die "must run as root"
    [ -d "$1" ] || { info "no such directory: $1 (nothing to stop)"; return 0; }
    local dir pid t left
    dir=$(readlink -f "$1")
    if pid=$(running_pid "$dir"); then
        # A graceful stop lets dockerd stop its containers and its containerd.
        kill -TERM "$pid" 2>/dev/null || true
        for t in $(seq 1 300); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    # Whatever is left in the private mount namespace (containerd, shims).
    for t in $(seq 1 50); do
        left=$(mntns_pids "$dir")
        [ -n "$left" ] || break
        kill -KILL $left 2>/dev/null || true
        sleep 0.1
    done
    left=$(mntns_pids "$dir")
    [ -z "$left" ] || die "processes of the daemon survive: $left"
    # The mounts lived only in that namespace and went with it.
    if grep -qF " $dir/" /proc/self/mounts; then
        die "mounts below $dir remain: $(grep -F " $dir/" /proc/self/mounts | awk '{print $2}' | tr '\n' ' ')"
    fi
    rm -rf "$dir/exec"
    rm -f "$dir/docker.sock" "$dir/dockerd.pid" "$dir/mntns"
    info "stopped ($dir)"
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    *) usage ;;
esac
