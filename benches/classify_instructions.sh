#!/usr/bin/env bash
# Instructions per call of this crate's classifier and of the `serde_json::Value` way, body by
# body, counted by callgrind: repeatable where wall-clock times are not (this machine is noisy).
# Each figure is (count at 201 calls - count at 1 call) / 200, so start-up costs cancel out.
#
# Usage: bash benches/classify_instructions.sh   (needs valgrind and python3; builds the bench)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench classify --no-run >/dev/null 2>&1
bin=$(ls -t target/release/deps/classify-* | grep -v '\.d$' | head -n 1)
out=$(mktemp -d)
per_call() {
    local rounds
    for rounds in 1 201; do
        CLASSIFY_ONLY=$1 CLASSIFY_BODY=$2 CLASSIFY_ROUNDS=$rounds \
            valgrind --tool=callgrind --callgrind-out-file="$out/$rounds" "$bin" >/dev/null 2>&1
    done
    # Instructions only (the first of callgrind_counts.py's two figures).
    python3 benches/support/callgrind_counts.py "$out/1" "$out/201" 200 | awk '{printf "%d", $1}'
}
printf '%-24s %12s %12s %8s\n' body classifier value ratio
sum_ours=0
sum_value=0
while read -r body; do
    ours=$(per_call classifier "$body")
    value=$(per_call value "$body")
    sum_ours=$((sum_ours + ours))
    sum_value=$((sum_value + value))
    python3 -c "import sys; o, v = int(sys.argv[2]), int(sys.argv[3]); print(f'{sys.argv[1]:24s} {o:12d} {v:12d} {v / o:7.2f}x')" "$body" "$ours" "$value"
done < <(CLASSIFY_LIST=1 "$bin")
python3 -c "import sys; o, v = int(sys.argv[1]), int(sys.argv[2]); print(f'{\"summed\":24s} {o:12d} {v:12d} {v / o:7.2f}x')" "$sum_ours" "$sum_value"
