#!/usr/bin/env bash
# Bench of the `machine` command line against a live TLS dockerd:
#
#   ls    with 50 live machines                      (goal: under 120 ms)
#   ls    with 40 live and 10 silent machines, -t 2  (goal: the timeout + under 0.5 s)
#   env   of a generic machine                       (goal: under 5 ms)
#   ssh   NAME true, system ssh and --native-ssh     (goal: under 200 ms)
#
# The live daemon is the one a generic machine gets on a test host; the other
# live machines are `none` machines pointing at it. The silent machines point
# at a listener on 127.0.0.1 that accepts connections and never answers.
#
#   eval "$(scripts/testhosts.sh env)"; bash benches/cli.sh
#
# Uses host BENCH_HOST_INDEX (default 4) of MT_HOSTS; the binary is
# MACHINE_BIN (default: a release build, made if missing); RUNS runs per
# figure (default 10, the median is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh

: "${MT_HOSTS:?run: eval \"\$(scripts/testhosts.sh env)\" first}"
: "${MT_KEY:?MT_KEY is not set}"
RUNS=${RUNS:-10}
INDEX=${BENCH_HOST_INDEX:-4}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
M=${MACHINE_BIN:-$TARGET/release/machine}
if [ ! -x "$M" ]; then
    cargo build --release -p machine-cli >&2
fi
read -r -a hosts <<<"$MT_HOSTS"
IP=${hosts[$INDEX]:?no test host $INDEX in MT_HOSTS}

STORE=$(mktemp -d)
export MACHINE_STORAGE_PATH=$STORE
LISTENER_PID=
cleanup() {
    [ -n "$LISTENER_PID" ] && kill "$LISTENER_PID" 2>/dev/null || true
    "$M" rm -f bench-live >/dev/null 2>&1 || true
    rm -rf "$STORE"
}
trap cleanup EXIT

# Median wall time in milliseconds of RUNS runs of "$@" (output discarded).
median_ms() {
    local times=() i start end
    for ((i = 0; i < RUNS; i++)); do
        start=$(date +%s%N)
        "$@" >/dev/null 2>&1 || true
        end=$(date +%s%N)
        times+=($(((end - start) / 1000)))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%.1f", m/1000}'
}

echo "creating the live machine on $IP..." >&2
"$M" create -d generic --generic-ip-address "$IP" --generic-ssh-key "$MT_KEY" \
    --engine-opt bridge=none --engine-opt iptables=false --engine-opt ip6tables=false \
    --engine-install-url none bench-live >/dev/null
for i in $(seq 1 49); do
    "$M" create -d none --url "tcp://$IP:2376" "live-$i" >/dev/null
done
[ "$("$M" ls -q | wc -l)" = 50 ] || { echo "expected 50 machines" >&2; exit 1; }

ls50=$(median_ms "$M" ls)

start_silent_listener "$STORE/silent.port"
for i in $(seq 40 49); do "$M" rm -y "live-$i" >/dev/null; done
for i in $(seq 1 10); do "$M" create -d none --url "tcp://127.0.0.1:$SILENT" "silent-$i" >/dev/null; done
RUNS_SAVED=$RUNS
RUNS=3
ls_silent=$(median_ms "$M" ls -t 2)
RUNS=$RUNS_SAVED

envt=$(median_ms "$M" env bench-live)
ssh_sys=$(median_ms "$M" ssh bench-live true)
ssh_native=$(median_ms "$M" --native-ssh ssh bench-live true)

printf 'ls, 50 live machines:              %8s ms\n' "$ls50"
printf 'ls -t 2, 40 live + 10 silent:      %8s ms\n' "$ls_silent"
printf 'env (local certificate check):     %8s ms\n' "$envt"
printf 'ssh NAME true (system ssh):        %8s ms\n' "$ssh_sys"
printf 'ssh NAME true (--native-ssh):      %8s ms\n' "$ssh_native"
