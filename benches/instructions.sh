#!/usr/bin/env bash
# Instructions per request of each success-path stack, over the bare service, counted by
# callgrind: repeatable where wall-clock times are not (this machine is noisy).
#
# One request costs `overhead::request` plus `overhead::run_with`; that cost divided by that of
# building the request
# (`http::request::Builder::and_then`, the same in every variant) gives the cost per request in
# "request builds", free of criterion's own fixed costs. The last column is each stack's
# overhead over bare as a multiple of tower's retry overhead. `required_work_floor` is the least
# any implementation of the whole stack must do (see benches/overhead.rs): the stack's row read
# against it shows how much is plumbing and how much is the work itself.
#
# Usage: bash benches/instructions.sh      (needs valgrind; builds the overhead bench first)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench overhead --no-run >/dev/null 2>&1
bin=$(ls -t target/release/deps/overhead-* | grep -v '\.d$' | head -n 1)
out=$(mktemp -d)
per_iteration() {
    local name=$1
    valgrind --tool=callgrind --callgrind-out-file="$out/$name" "$bin" --bench --profile-time 1 \
        "success_path_overhead/$name\$" >/dev/null 2>&1
    local total builder
    # One request = building it (`overhead::request`) plus sending it (`overhead::run_with`).
    # Both must be symbols of their own (they are `#[inline(never)]`); fail rather than count half.
    total=$(callgrind_annotate --inclusive=yes "$out/$name" | awk '/overhead::(request|run_with) / {gsub(",", "", $1); sum += $1; n++} END {if (n == 2) print sum}')
    if [ -z "$total" ]; then
        echo "instructions.sh: overhead::request or overhead::run_with not found in $name's profile" >&2
        exit 1
    fi
    # awk reads to the end: exiting at the match would SIGPIPE callgrind_annotate, which
    # pipefail turns into a failed script whenever the profile is long.
    builder=$(callgrind_annotate --inclusive=yes "$out/$name" | awk '/Builder::and_then/ && !found {gsub(",", "", $1); print $1; found = 1}')
    echo "$total $builder"
}
read -r bare_total bare_builder < <(per_iteration bare)
read -r tower_total tower_builder < <(per_iteration tower_retry_cloning_policy)
printf '%-34s %16s %18s\n' stack "cost/bare" "overhead/tower's"
for name in bare tower_retry_cloning_policy http_resilience_retry http_resilience_classify \
        http_resilience_retry_classify http_resilience_full_stack required_work_floor; do
    read -r total builder < <(per_iteration "$name")
    python3 - "$name" "$total" "$builder" "$bare_total" "$bare_builder" "$tower_total" "$tower_builder" <<'PY'
import sys
name = sys.argv[1]
total, builder, bare_total, bare_builder, tower_total, tower_builder = map(int, sys.argv[2:])
unit = lambda t, b: t / b
bare, tower, this = unit(bare_total, bare_builder), unit(tower_total, tower_builder), unit(total, builder)
print(f"{name:34s} {this / bare:16.3f} {(this - bare) / (tower - bare) + 0.0:18.2f}")
PY
done
