#!/usr/bin/env bash
# Peak resident memory while a 64 MiB success body streams through each client stack, over the
# bare client's (one process per stack: criterion does not measure memory).
# Usage: bash benches/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --features reqwest --example stream_memory >/dev/null 2>&1
bin=target/release/examples/stream_memory
declare -A peak
for stack in hyper-bare hyper-resilience reqwest-bare reqwest-retry reqwest-resilience; do
    # Best of three runs: the allocator's high-water mark varies a little run to run.
    best=""
    for _ in 1 2 3; do
        read -r _ len kib < <("$bin" "$stack")
        [ "$len" = 67108864 ] || { echo "$stack delivered $len bytes, not 64 MiB" >&2; exit 1; }
        if [ -z "$best" ] || [ "$kib" -lt "$best" ]; then best=$kib; fi
    done
    peak[$stack]=$best
done
printf '%-20s %12s %14s\n' stack "peak KiB" "over bare KiB"
for stack in hyper-bare hyper-resilience; do
    printf '%-20s %12s %14s\n' "$stack" "${peak[$stack]}" "$(( ${peak[$stack]} - ${peak[hyper-bare]} ))"
done
for stack in reqwest-bare reqwest-retry reqwest-resilience; do
    printf '%-20s %12s %14s\n' "$stack" "${peak[$stack]}" "$(( ${peak[$stack]} - ${peak[reqwest-bare]} ))"
done
