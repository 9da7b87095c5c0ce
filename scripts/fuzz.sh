#!/usr/bin/env bash
# Runs every fuzz target of machine-core/fuzz for a bounded time each.
#
#   scripts/fuzz.sh [SECONDS]     default 30 per target
#
# Installs cargo-fuzz from crates.io when it is missing. cargo-fuzz passes
# nightly-only flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain take them.
# Seeds come from machine-core/fuzz/corpus/<target> (read only); what the runs
# add goes to target/fuzz-corpus/<target>. No sanitizer: the code is safe
# Rust, so the runs look for panics, overflows and hangs, and build faster.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "fuzz: SECONDS must be a number: $secs" >&2; exit 2; }
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install --quiet --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$PWD/target/fuzz
dir=machine-core/fuzz
targets=$(cargo fuzz list --fuzz-dir "$dir")
cargo fuzz build --fuzz-dir "$dir" -s none --dev
failed=0
for t in $targets; do
    mkdir -p "target/fuzz-corpus/$t" "$dir/corpus/$t"
    echo "fuzz: $t for $secs s"
    if ! cargo fuzz run --fuzz-dir "$dir" -s none --dev "$t" "target/fuzz-corpus/$t" "$dir/corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        > "target/fuzz-$t.log" 2>&1; then
        echo "fuzz: $t FAILED (target/fuzz-$t.log):" >&2
        tail -n 30 "target/fuzz-$t.log" >&2
        failed=$((failed + 1))
    else
        grep -E '^stat::number_of_executed_units' "target/fuzz-$t.log" | sed "s/^/fuzz: $t /" || true
    fi
done
n=$(echo $targets | wc -w)
echo "fuzz: $((n - failed)) passed, $failed failed"
[ $failed = 0 ]
