#!/usr/bin/env bash
# Times `machine create -d amazonec2` (to a provisioned, answering daemon) and
# `machine rm` against the EC2 emulator moto on loopback, N rounds, with the
# instance's private address landing on one test host (as in
# machine-cli/tests/ec2.rs). Run by hand, as root, never next to the tests:
#
#   bash scripts/testhosts.sh up 15 && eval "$(bash scripts/testhosts.sh env)"
#   cargo build -p machine-cli && bash benches/ec2-bench.sh [ROUNDS]
#
# BENCH_HOST_INDEX (default 15) picks the host; MACHINE (default
# target/debug/machine) the binary. Prints one line per round, then
# min / median / max of each phase.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
INDEX=${BENCH_HOST_INDEX:-15}
MACHINE=${MACHINE:-$PWD/target/debug/machine}
die() { echo "ec2-bench: error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (it adds routes)"
command -v moto_server >/dev/null || die "moto_server missing: python3 -m pip install 'moto[server]'"
[ -x "$MACHINE" ] || die "$MACHINE missing: cargo build -p machine-cli"
read -r -a hosts <<<"${MT_HOSTS:?eval \"\$(bash scripts/testhosts.sh env)\" first}"
read -r -a names <<<"${MT_HOST_NAMES:?}"
addr=${hosts[$INDEX]:?no host $INDEX in MT_HOSTS}
ns=${names[$INDEX]}
third=$(cut -d. -f3 <<<"$addr")
cidr="10.$((199 + INDEX)).$third.0/24"

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
cleanup() {
    kill "$moto" 2>/dev/null || true
    ip route del "$cidr" 2>/dev/null || true
    ip netns exec "$ns" ip route del local "$cidr" dev lo 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
ip netns exec "$ns" ip route replace local "$cidr" dev lo
ip route replace "$cidr" via "$addr"

read -r subnet ami < <(python3 - "$port" "$cidr" "$MT_KEY.pub" <<'EOF'
import boto3, sys
ec2 = boto3.client("ec2", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
                   aws_access_key_id="AKIDBENCH", aws_secret_access_key="bench")
vpc = ec2.create_vpc(CidrBlock=sys.argv[2])["Vpc"]["VpcId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=sys.argv[2], AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
ec2.import_key_pair(KeyName="bench-key", PublicKeyMaterial=open(sys.argv[3], "rb").read())
print(subnet, ec2.describe_images()["Images"][0]["ImageId"])
EOF
)

export MACHINE_STORAGE_PATH="$work/store" AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench \
    AWS_EC2_METADATA_DISABLED=true
now() { date +%s.%N; }
creates=() removes=()
for i in $(seq "$ROUNDS"); do
    t0=$(now)
    "$MACHINE" create -d amazonec2 --amazonec2-endpoint "127.0.0.1:$port" --amazonec2-insecure-transport \
        --amazonec2-ami "$ami" --amazonec2-subnet-id "$subnet" --amazonec2-private-address-only=true \
        --amazonec2-keypair-name bench-key --amazonec2-ssh-keypath "$MT_KEY" --amazonec2-ssh-user root \
        --engine-opt bridge=none --engine-opt iptables=false --engine-opt ip6tables=false \
        --engine-install-url none "bench-$i" >"$work/create.log" 2>&1 || { cat "$work/create.log"; die "create failed"; }
    t1=$(now)
    "$MACHINE" rm -y "bench-$i" >/dev/null
    t2=$(now)
    c=$(echo "$t1 - $t0" | bc) r=$(echo "$t2 - $t1" | bc)
    creates+=("$c") removes+=("$r")
    printf 'round %d: create %.2f s, rm %.2f s\n' "$i" "$c" "$r"
done
stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "min %.2f s, median %.2f s, max %.2f s\n", a[1], a[int((NR+1)/2)], a[NR]}'; }
echo "create (to a daemon answering over TLS): $(stats "${creates[@]}")"
echo "rm (terminate, delete group):            $(stats "${removes[@]}")"
