#!/usr/bin/env bash
# Run a real dockerd (Debian's docker.io) with TLS for certificate tests, in its
# own mount namespace with private data and exec roots, no bridge and no
# iptables rules, so it touches nothing else on the machine.
#
#   dockerd-tls.sh start DIR PORT   DIR holds ca.pem, server.pem, server-key.pem
#   dockerd-tls.sh stop DIR
#
# The daemon listens on tcp://127.0.0.1:PORT (mutual TLS) and unix://DIR/docker.sock.
set -euo pipefail

die() { echo "dockerd-tls: $*" >&2; exit 1; }

start() {
    local dir port
    dir=$(readlink -f "${1:?usage: dockerd-tls.sh start DIR PORT}")
    port=${2:?usage: dockerd-tls.sh start DIR PORT}
    for f in ca.pem server.pem server-key.pem; do
        [ -f "$dir/$f" ] || die "missing $dir/$f"
    done
    command -v dockerd >/dev/null || die "dockerd is not installed (apt-get install docker.io)"
    mkdir -p "$dir/data" "$dir/exec"
    : > "$dir/dockerd.log"
    unshare --mount --propagation private --fork bash -c '
        dir=$1 port=$2
        # a private /run: the daemon must not find or disturb another containerd
        mount -t tmpfs tmpfs /run
        mkdir -p /run/lock
        nohup dockerd \
            --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
            --bridge=none --iptables=false --ip6tables=false \
            -H "tcp://127.0.0.1:$port" -H "unix://$dir/docker.sock" \
            --tlsverify --tlscacert "$dir/ca.pem" --tlscert "$dir/server.pem" --tlskey "$dir/server-key.pem" \
            >>"$dir/dockerd.log" 2>&1 </dev/null &
    ' _ "$dir" "$port"
    local i
    for i in $(seq 1 120); do
        if docker -H "unix://$dir/docker.sock" version >/dev/null 2>&1; then
            echo "dockerd-tls: daemon up on tcp://127.0.0.1:$port"
            return 0
        fi
        sleep 0.5
    done
    tail -n 30 "$dir/dockerd.log" >&2
    stop "$dir" || true
    die "dockerd did not come up within 60 s"
}

stop() {
    local dir
    dir=$(readlink -f "${1:?usage: dockerd-tls.sh stop DIR}")
    [ -f "$dir/docker.pid" ] || return 0
    local pid i
    pid=$(cat "$dir/docker.pid")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/docker.pid"
    rm -rf "$dir/data" "$dir/exec" 2>/dev/null || true
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
