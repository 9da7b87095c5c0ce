#!/usr/bin/env bash
# Times `machine create -d amazonec2` (to a provisioned, answering daemon) and
# `machine rm` against the EC2 emulator moto on loopback, with each
# instance's private address landing on a test host (as in
# machine-cli/tests/ec2.rs). Run by hand, as root, never next to the tests:
#
#   bash scripts/testhosts.sh up 30 && eval "$(bash scripts/testhosts.sh env)"
#   cargo build -p machine-cli && bash benches/ec2-bench.sh [ROUNDS]
#
# Part 1: ROUNDS creates one after another on host BENCH_HOST_INDEX (default
# 15), each split into its phases by the time its progress lines appear:
#   api  from the start to "Waiting for SSH" (pre-create checks, key pair,
#        security group, RunInstances, waiting for state running)
#   ssh  waiting for the SSH port to answer
#   prov provisioning: certificates, SSH session, Docker configured and
#        restarted, the daemon answering over TLS
# Part 2: ten creates at once, one per host of BENCH_CONCURRENT_HOSTS
# (default the ec2 suite's ten: 15 16 22 ... 29), then ten removes at once.
# MACHINE (default target/debug/machine) picks the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
INDEX=${BENCH_HOST_INDEX:-15}
read -r -a CONCURRENT <<<"${BENCH_CONCURRENT_HOSTS:-15 16 22 23 24 25 26 27 28 29}"
MACHINE=${MACHINE:-$PWD/target/debug/machine}
die() { echo "ec2-bench: error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (it adds routes)"
command -v moto_server >/dev/null || die "moto_server missing: python3 -m pip install 'moto[server]'"
[ -x "$MACHINE" ] || die "$MACHINE missing: cargo build -p machine-cli"
read -r -a hosts <<<"${MT_HOSTS:?eval \"\$(bash scripts/testhosts.sh env)\" first}"
read -r -a names <<<"${MT_HOST_NAMES:?}"

work=$(mktemp -d)
routed=()
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
cleanup() {
    kill "$moto" 2>/dev/null || true
    for r in "${routed[@]}"; do
        read -r cidr ns <<<"$r"
        ip route del "$cidr" 2>/dev/null || true
        ip netns exec "$ns" ip route del local "$cidr" dev lo 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

# route host INDEX's CIDR to it and make a VPC and subnet there, its id in SUBNET
subnet_on() {
    local i=$1 addr ns third cidr
    addr=${hosts[$i]:?no host $i in MT_HOSTS}
    ns=${names[$i]}
    third=$(cut -d. -f3 <<<"$addr")
    cidr="10.$((199 + i)).$third.0/24"
    ip netns exec "$ns" ip route replace local "$cidr" dev lo
    ip route replace "$cidr" via "$addr"
    routed+=("$cidr $ns")
    SUBNET=$(python3 - "$port" "$cidr" <<'EOF'
import boto3, sys
ec2 = boto3.client("ec2", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
                   aws_access_key_id="AKIDBENCH", aws_secret_access_key="bench")
vpc = ec2.create_vpc(CidrBlock=sys.argv[2])["Vpc"]["VpcId"]
print(ec2.create_subnet(VpcId=vpc, CidrBlock=sys.argv[2], AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"])
EOF
)
}

read -r ami < <(python3 - "$port" "$MT_KEY.pub" <<'EOF'
import boto3, sys
ec2 = boto3.client("ec2", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
                   aws_access_key_id="AKIDBENCH", aws_secret_access_key="bench")
ec2.import_key_pair(KeyName="bench-key", PublicKeyMaterial=open(sys.argv[2], "rb").read())
print(ec2.describe_images()["Images"][0]["ImageId"])
EOF
)

export MACHINE_STORAGE_PATH="$work/store" AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench \
    AWS_EC2_METADATA_DISABLED=true
now() { date +%s.%N; }
create() { # create NAME SUBNET: the create's output, each line prefixed with its time
    "$MACHINE" create -d amazonec2 --amazonec2-endpoint "127.0.0.1:$port" --amazonec2-insecure-transport \
        --amazonec2-ami "$ami" --amazonec2-subnet-id "$2" --amazonec2-private-address-only=true \
        --amazonec2-keypair-name bench-key --amazonec2-ssh-keypath "$MT_KEY" --amazonec2-ssh-user root \
        --engine-opt bridge=none --engine-opt iptables=false --engine-opt ip6tables=false \
        --engine-install-url none "$1" 2>&1 |
        while IFS= read -r line; do printf '%s %s\n' "$(now)" "$line"; done
    return "${PIPESTATUS[0]}"
}
at() { # at PATTERN FILE: the time of the first line matching PATTERN
    grep -m1 -- "$1" "$2" | cut -d' ' -f1
}

subnet_on "$INDEX"
subnet=$SUBNET
api=() ssh=() prov=() total=() removes=()
for i in $(seq "$ROUNDS"); do
    t0=$(now)
    create "bench-$i" "$subnet" >"$work/create.log" || { cat "$work/create.log"; die "create failed"; }
    t_ssh=$(at "Waiting for SSH" "$work/create.log")
    t_prov=$(at "Waiting for the machine to be running" "$work/create.log")
    t1=$(at "Docker is up and running" "$work/create.log")
    "$MACHINE" rm -y "bench-$i" >/dev/null
    t2=$(now)
    a=$(echo "$t_ssh - $t0" | bc) s=$(echo "$t_prov - $t_ssh" | bc) p=$(echo "$t1 - $t_prov" | bc)
    c=$(echo "$t1 - $t0" | bc) r=$(echo "$t2 - $t1" | bc)
    api+=("$a") ssh+=("$s") prov+=("$p") total+=("$c") removes+=("$r")
    printf 'round %d: create %.2f s (api %.2f, ssh wait %.2f, provisioning %.2f), rm %.2f s\n' \
        "$i" "$c" "$a" "$s" "$p" "$r"
done
stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "min %.2f s, median %.2f s, max %.2f s\n", a[1], a[int((NR+1)/2)], a[NR]}'; }
echo "create, to a daemon answering over TLS: $(stats "${total[@]}")"
echo "  api phase:                            $(stats "${api[@]}")"
echo "  ssh wait:                             $(stats "${ssh[@]}")"
echo "  provisioning:                         $(stats "${prov[@]}")"
echo "rm (terminate, delete group):           $(stats "${removes[@]}")"

subnets=()
for i in "${CONCURRENT[@]}"; do
    subnet_on "$i"
    subnets+=("$SUBNET")
done
t0=$(now)
pids=()
for n in "${!subnets[@]}"; do
    create "many-$n" "${subnets[$n]}" >"$work/many-$n.log" &
    pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
t1=$(now)
[ "$failed" = 0 ] || { cat "$work"/many-*.log; die "$failed of ${#subnets[@]} concurrent creates failed"; }
pids=()
for n in "${!subnets[@]}"; do
    "$MACHINE" rm -y "many-$n" >/dev/null &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || die "a concurrent rm failed"; done
t2=$(now)
printf '%d concurrent creates (each to a daemon answering over TLS, one host each): %.2f s wall\n' \
    "${#subnets[@]}" "$(echo "$t1 - $t0" | bc)"
printf '%d concurrent removes: %.2f s wall\n' "${#subnets[@]}" "$(echo "$t2 - $t1" | bc)"
