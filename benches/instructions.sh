#!/usr/bin/env bash
# Instructions and allocations per request of each success-path stack, counted by callgrind:
# repeatable where wall-clock times are not (this machine is noisy).
#
# Each stack runs alone in the overhead bench's callgrind mode (OVERHEAD_ONLY, see
# benches/overhead.rs), over an inner service that answers at once, in two scenarios: `get` (a
# GET answered 200 with an image, whose body is not read) and `post_json` (the everyday call to
# a generation API: a POST with a JSON body answered 200 with a small JSON body). A request's
# cost is (count at 3001 requests - count at 1001) / 2000, so start-up cancels out; allocations
# are calls of malloc counted the same way. "extra" is the cost over the bare service;
# "vs tower" is that extra as a multiple of tower::retry's (a cloning policy), measured in the
# same binary. `required_work_floor` is the least any implementation must do (benches/overhead.rs).
#
# Usage: bash benches/instructions.sh [get|post_json ...]   (needs valgrind and python3)
#        FEATURES=metrics bash benches/instructions.sh   (the same with cargo features on)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench overhead --no-run ${FEATURES:+--features "$FEATURES"} >/dev/null 2>&1
bin=$(ls -t target/release/deps/overhead-* | grep -v '\.d$' | head -n 1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
scenarios=("$@")
[ ${#scenarios[@]} -eq 0 ] && scenarios=(get post_json)
# measure PREFIX BIN NAME SCENARIO: one request's instructions and allocations through NAME.
measure() {
    local prefix=$1 bin=$2 name=$3 scenario=$4 rounds
    for rounds in 1001 3001; do
        env "${prefix}_ONLY=$name" "${prefix}_SCENARIO=$scenario" "${prefix}_ROUNDS=$rounds" \
            valgrind --tool=callgrind --callgrind-out-file="$out/$rounds" "$bin" >/dev/null 2>&1
    done
    echo "$name $(python3 benches/support/callgrind_counts.py "$out/1001" "$out/3001" 2000)"
}
# table KIND BASELINE LABEL: the rows read on stdin, each extra over `bare` as a multiple of
# BASELINE's, in a column named LABEL.
table() {
    python3 -c '
import sys
kind, baseline, label = sys.argv[1:4]
rows = [line.split() for line in sys.stdin if line.strip()]
cost = {name: (float(i), float(a)) for name, i, a in rows}
bare_i, bare_a = cost["bare"]
base_extra = cost[baseline][0] - bare_i
print("%-38s %13s %8s %9s %12s" % (kind, "instructions", "extra", label, "allocations"))
for name, (i, a) in cost.items():
    extra = i - bare_i
    ratio = f"{extra / base_extra:.2f}x" if name != "bare" else ""
    print(f"{name:38s} {i:13.0f} {extra:+8.0f} {ratio:>9s} {a:12.1f}")
' "$@"
}
for scenario in "${scenarios[@]}"; do
    echo "== $scenario"
    while read -r stack; do
        measure OVERHEAD "$bin" "$stack" "$scenario"
    done < <(OVERHEAD_LIST=1 "$bin") | table stack tower_retry_cloning_policy "vs tower"
done

# The same for reqwest-middleware chains (benches/middleware.rs: each ends in a middleware that
# answers at once); "vs retry" is the extra as a multiple of reqwest-retry's.
cargo bench --bench middleware --no-run --features "reqwest${FEATURES:+,$FEATURES}" >/dev/null 2>&1
bin=$(ls -t target/release/deps/middleware-* | grep -v '\.d$' | head -n 1)
for scenario in "${scenarios[@]}"; do
    echo "== reqwest-middleware, $scenario"
    while read -r chain; do
        measure MIDDLEWARE "$bin" "$chain" "$scenario"
    done < <(MIDDLEWARE_LIST=1 "$bin") | table chain reqwest_retry "vs retry"
done
