#!/usr/bin/env bash
# End-to-end bench of the `machine` command line against one live TLS dockerd
# on a test host, side by side with another docker-machine binary when one is
# given:
#
#   ls             with 1, 10 and 50 live machines
#   ls -t 2        with 50 live machines and 1 black-holed one
#   ls, ls -q      with 500 machines (and the peak memory of `ls`)
#   ssh NAME true  (system ssh; repeated runs)
#   env, config, inspect, status NAME
#   create -d qemu to a ready daemon (only with BENCH_QEMU=1; slow under TCG)
#
#   eval "$(scripts/testhosts.sh env)"
#   bash benches/e2e-bench.sh
#   DOCKER_MACHINE=/path/to/docker-machine bash benches/e2e-bench.sh
#
# One store serves both binaries (the store format is the same): a generic
# machine provisioned on host BENCH_HOST_INDEX (default 4) of MT_HOSTS as its
# sudo user (the test hosts share root's home, and with it whatever the
# machine's own root runs at login, with the computer they run on), the
# other live machines `none` machines pointing at its daemon. The black-holed
# machine points at a listener on 127.0.0.1 that accepts connections and
# never answers. Figures are means in milliseconds (hyperfine when installed,
# otherwise a loop of RUNS runs, default 10). The binary is MACHINE_BIN
# (default: a release build, made if missing).
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
DM=${DOCKER_MACHINE:-}
if [ ! -x "$M" ]; then
    cargo build --release -p machine-cli >&2
fi
if [ -n "$DM" ] && [ ! -x "$DM" ]; then
    echo "e2e-bench: error: DOCKER_MACHINE=$DM is not an executable" >&2
    exit 1
fi
read -r -a hosts <<<"$MT_HOSTS"
IP=${hosts[$INDEX]:?no test host $INDEX in MT_HOSTS}
HYPERFINE=$(command -v hyperfine || true)

STORE=$(mktemp -d /tmp/e2e-bench.XXXXXX)
export MACHINE_STORAGE_PATH=$STORE
# docker-machine reports its errors to an outside service unless told not to
: >"$STORE/no-error-report"
LISTENER_PID=
cleanup() {
    if [ -n "$LISTENER_PID" ]; then kill "$LISTENER_PID" 2>/dev/null || true; fi
    "$M" rm -f -y bench-live >/dev/null 2>&1 || true
    rm -rf "$STORE"
}
trap cleanup EXIT

# Mean wall time in milliseconds of "$@" (output discarded).
mean_ms() {
    if [ -n "$HYPERFINE" ]; then
        local json=$STORE/hyperfine.json
        local warmup=2
        if [ "$RUNS" -le 3 ]; then warmup=1; fi
        "$HYPERFINE" -N -i --warmup "$warmup" --runs "$RUNS" --export-json "$json" \
            -- "$(printf '%q ' "$@")" >/dev/null 2>&1
        python3 -c 'import json,sys; print("%.1f" % (json.load(open(sys.argv[1]))["results"][0]["mean"] * 1000))' "$json"
        return
    fi
    local total=0 i start end
    "$@" >/dev/null 2>&1 || true
    for ((i = 0; i < RUNS; i++)); do
        start=$(date +%s%N)
        "$@" >/dev/null 2>&1 || true
        end=$(date +%s%N)
        total=$((total + (end - start) / 1000))
    done
    awk -v t="$total" -v n="$RUNS" 'BEGIN { printf "%.1f", t / n / 1000 }'
}

# Peak resident memory in MiB of one run of "$@".
peak_mib() {
    if [ ! -x /usr/bin/time ]; then
        echo "-"
        return
    fi
    /usr/bin/time -f '%M' -o "$STORE/time.out" "$@" >/dev/null 2>&1 || true
    awk '{ printf "%.1f", $1 / 1024 }' "$STORE/time.out"
}

ROWS=()
# row LABEL UNIT OURS THEIRS
row() {
    ROWS+=("$1|$2|$3|$4")
}

# bench LABEL -- ARGS...: the same command with both binaries.
bench() {
    local label=$1
    shift
    local ours theirs=-
    ours=$(mean_ms "$M" "$@")
    if [ -n "$DM" ]; then theirs=$(mean_ms "$DM" "$@"); fi
    row "$label" ms "$ours" "$theirs"
}

# check N: the store lists N machines.
check_count() {
    local n
    n=$("$M" ls -q | wc -l)
    [ "$n" = "$1" ] || { echo "e2e-bench: error: expected $1 machines, the store has $n" >&2; exit 1; }
}

echo "e2e-bench: creating the live machine on $IP..." >&2
"$M" create -d generic --generic-ip-address "$IP" --generic-ssh-key "$MT_KEY" \
    --generic-ssh-user "${MT_SUDO_USER:-mtuser}" --engine-opt bridge=none --engine-opt iptables=false --engine-opt ip6tables=false \
    --engine-install-url none bench-live >/dev/null
check_count 1
bench "ls, 1 live machine" ls
for i in $(seq 1 9); do "$M" create -d none --url "tcp://$IP:2376" "live-$i" >/dev/null; done
check_count 10
bench "ls, 10 live machines" ls
for i in $(seq 10 49); do "$M" create -d none --url "tcp://$IP:2376" "live-$i" >/dev/null; done
check_count 50
bench "ls, 50 live machines" ls
bench "ls -q, 50 machines" ls -q

start_silent_listener "$STORE/silent.port"
"$M" create -d none --url "tcp://127.0.0.1:$SILENT" silent >/dev/null
SAVED_RUNS=$RUNS
RUNS=3
bench "ls -t 2, 50 live + 1 black-holed" ls -t 2
RUNS=$SAVED_RUNS
"$M" rm -y silent >/dev/null

bench "ssh NAME true (system ssh)" ssh bench-live true
ours=$(mean_ms "$M" --native-ssh ssh bench-live true)
theirs=-
if [ -n "$DM" ]; then theirs=$(mean_ms "$DM" --native-ssh ssh bench-live true); fi
row "ssh NAME true (--native-ssh)" ms "$ours" "$theirs"
bench "env NAME" env bench-live
bench "config NAME" config bench-live
bench "inspect NAME" inspect bench-live
bench "status NAME" status bench-live

# 500 machines: 450 more `none` machines, made by copying one (the bench
# measures listing, not creating).
"$M" create -d none --url "tcp://$IP:2376" "bulk-0" >/dev/null
for i in $(seq 1 449); do
    cp -a "$STORE/machines/bulk-0" "$STORE/machines/bulk-$i"
    sed -i "s/\"bulk-0\"/\"bulk-$i\"/g" "$STORE/machines/bulk-$i/config.json"
done
check_count 500
SAVED_RUNS=$RUNS
RUNS=3
bench "ls, 500 machines" ls
bench "ls -q, 500 machines" ls -q
RUNS=$SAVED_RUNS
ours=$(peak_mib "$M" ls)
theirs=-
if [ -n "$DM" ]; then theirs=$(peak_mib "$DM" ls); fi
row "ls, 500 machines: peak memory" MiB "$ours" "$theirs"

# Each output line of "$@" prefixed with the nanoseconds since the epoch.
stamped() {
    "$@" 2>&1 | while IFS= read -r line; do printf '%s %s\n' "$(date +%s%N)" "$line"; done
}

# The stamp of the first line of stamped output FILE that contains TEXT.
stamp_of() {
    grep -F -m1 -- "$2" "$1" | cut -d' ' -f1
}

if [ "${BENCH_QEMU:-0}" = 1 ]; then
    export MACHINE_QEMU_ACCEL=${MACHINE_QEMU_ACCEL:-tcg}
    # the image is built (or found) before the clock starts
    "$M" create -d qemu bench-vm0 >/dev/null 2>&1 || true
    "$M" rm -f -y bench-vm0 >/dev/null 2>&1 || true
    log=$STORE/create.log
    begin=$(date +%s%N)
    stamped "$M" create -d qemu bench-vm >"$log"
    end=$(date +%s%N)
    # the VM's own boot: from QEMU's start to its SSH server answering (the
    # driver returns then, and the next step waits for the state Running)
    booting=$(stamp_of "$log" "Starting the VM")
    booted=$(stamp_of "$log" "Waiting for the machine to be running")
    if [ -n "$booting" ] && [ -n "$booted" ]; then
        row "qemu VM boot to SSH (inside create)" ms "$(((booted - booting) / 1000000))" -
        row "qemu create: SSH to a ready daemon" ms "$(((end - booted) / 1000000))" -
    fi
    row "create -d qemu to a ready daemon" ms "$(((end - begin) / 1000000))" -
    "$M" stop bench-vm >/dev/null
    begin=$(date +%s%N)
    "$M" start bench-vm >/dev/null
    end=$(date +%s%N)
    row "start (qemu) to a ready daemon" ms "$(((end - begin) / 1000000))" -
    "$M" rm -f -y bench-vm >/dev/null 2>&1 || true
fi

if [ -n "$DM" ]; then
    printf '| %-36s | %11s | %15s | %7s |\n' command ours docker-machine ratio
    printf '|%s|%s|%s|%s|\n' "--------------------------------------" "-------------" "-----------------" "---------"
else
    printf '| %-36s | %11s |\n' command ours
    printf '|%s|%s|\n' "--------------------------------------" "-------------"
fi
for r in "${ROWS[@]}"; do
    IFS='|' read -r label unit ours theirs <<<"$r"
    if [ -n "$DM" ]; then
        ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { if (a > 0 && b > 0) printf "%.1fx", b / a; else print "-" }')
        printf '| %-36s | %7s %-3s | %11s %-3s | %7s |\n' "$label" "$ours" "$unit" "$theirs" "$unit" "$ratio"
    else
        printf '| %-36s | %7s %-3s |\n' "$label" "$ours" "$unit"
    fi
done
