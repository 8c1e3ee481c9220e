#!/usr/bin/env bash
# The long part of the reliability gauntlet (preload-test/gauntlet.rs):
#   1. the time-scaled gauntlet cases at full length (STACKSAMPLE_GAUNTLET_LONG=1: the
#      interrupted allocator for 20 s at 10 kHz, a million distinct stacks at the default
#      table size, ...), unless SOAK_ONLY=1;
#   2. a soak: a four-thread allocating program profiled at 1 kHz with every thread sampled
#      for SOAK_SECONDS (default 600), then the same program run plain for
#      SOAK_PLAIN_SECONDS (default 240, at most SOAK_SECONDS). Their resident
#      memory is read every 10 s, and so is the library's own heap (built with the
#      `heap-stats` feature, the profile rewritten every 10 s). The script prints the slopes
#      after a one-minute warm-up (resident: profiled minus plain; heap: the library's
#      allocations alone, and the part outside its table of distinct stacks) and what the
#      profile says was lost, and fails if the library's heap outside the stack table grew
#      by more than 64 KB, if resident memory grew by more than its new distinct stacks
#      explain (1 KB each, plus 1 MB), if any sample was dropped because the drain fell
#      behind, or if more than 1% of ticks were lost to the sampler falling behind. The host's steal time over the run is
#      printed beside it: a virtual CPU the host takes away delays the sampler whatever its
#      scheduling.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SOAK_SECONDS:-600}
plain_seconds=${SOAK_PLAIN_SECONDS:-$((seconds < 240 ? seconds : 240))}
warmup=$((seconds < 120 ? seconds / 4 : 60))

scripts/install-deps.sh
if [[ ${SOAK_ONLY:-0} != 1 ]]; then
    STACKSAMPLE_GAUNTLET_LONG=1 cargo test --release --test preload gauntlet -- --test-threads=1
fi
# After the tests, which build the library without the feature.
cargo build --release --features heap-stats

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -g -o "$work/alloc_storm" preload-test/programs/alloc_storm.c -lpthread
# Resident memory of process $1 every 10 s until it ends, as "seconds KB" lines in $2.
# With $3, from the profile $3 rewritten meanwhile: the library's heap ($2.heap), the part
# of it outside the table of distinct stacks ($2.own), both in KB, and the number of
# distinct stacks by address ($2.stacks).
watch_rss() {
    local pid=$1 out=$2 report=${3:-} started at rss heap table stacks
    started=$(date +%s)
    : >"$out"
    : >"$out.heap"
    : >"$out.own"
    : >"$out.stacks"
    while kill -0 "$pid" 2>/dev/null; do
        at=$(($(date +%s) - started))
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        [[ -n $rss ]] && echo "$at $rss" >>"$out"
        if [[ -n $report && -f $report ]]; then
            heap=$(sed -n 's/^heap: *\([0-9]*\) bytes live.*/\1/p' "$report")
            table=$(sed -n 's/^stacks:.*holds about \([0-9]*\) bytes.*/\1/p' "$report")
            stacks=$(sed -n 's/^stacks: *\([0-9]*\) distinct.*/\1/p' "$report")
            if [[ -n $heap && -n $table && -n $stacks ]]; then
                echo "$at $((heap / 1024))" >>"$out.heap"
                echo "$at $(((heap - table) / 1024))" >>"$out.own"
                echo "$at $stacks" >>"$out.stacks"
            fi
        fi
        sleep 10
    done
}
steal() { awk '/^cpu / { print $9 }' /proc/stat; }
steal_before=$(steal)
LD_PRELOAD="$PWD/target/release/libstacksample.so" STACKSAMPLE_TID=all \
    STACKSAMPLE_INTERVAL=1ms STACKSAMPLE_OUTPUT="$work/soak" STACKSAMPLE_FLUSH=10s \
    "$work/alloc_storm" 4 "$seconds" >"$work/stdout" &
pid=$!
watch_rss "$pid" "$work/rss" "$work/soak.txt"
wait "$pid"
steal_ticks=$(($(steal) - steal_before))
# Then the same program plain, alone too (side by side, two copies of a program that keeps
# every CPU busy would double the load): the difference of the two slopes is the
# library's (the program's own heap moves a little too).
"$work/alloc_storm" 4 "$plain_seconds" >"$work/plain-stdout" &
plain=$!
watch_rss "$plain" "$work/plain-rss"
wait "$plain"
grep -qx "done 4" "$work/stdout"

# Least-squares slope of resident memory after the warm-up, in KB per minute.
slope_of() {
    awk -v warmup="$warmup" '$1 >= warmup { n++; sx += $1; sy += $2; sxx += $1 * $1; sxy += $1 * $2 }
        END { if (n < 2) { print "nan"; exit } d = n * sxx - sx * sx; printf "%.1f", d ? 60 * (n * sxy - sx * sy) / d : 0 }' "$1"
}
echo "resident memory, profiled (seconds, KB):"
tr '\n' ' ' <"$work/rss"
echo
profiled_slope=$(slope_of "$work/rss")
plain_slope=$(slope_of "$work/plain-rss")
slope=$(awk -v a="$profiled_slope" -v b="$plain_slope" 'BEGIN { printf "%.1f", a - b }')
echo "slope after ${warmup} s of warm-up: profiled ${profiled_slope} KB/min, plain ${plain_slope} KB/min, library ${slope} KB/min"
heap_slope=$(slope_of "$work/rss.heap")
own_slope=$(slope_of "$work/rss.own")
echo "library heap (seconds, KB): $(tr '\n' ' ' <"$work/rss.heap")"
echo "  outside the stack table: $(tr '\n' ' ' <"$work/rss.own")"
echo "distinct stacks by address: $(tr '\n' ' ' <"$work/rss.stacks")"
echo "library heap slope after ${warmup} s: ${heap_slope} KB/min, outside the stack table ${own_slope} KB/min"
echo "distinct stacks in the profile: $(wc -l <"$work/soak.folded") after naming"
echo "host steal time during the profiled run: $((steal_ticks * 10)) ms of CPU"
grep -E '^(samples|missed|dropped|truncated|handler time|sampler|stacks|heap):' "$work/soak.txt"

behind=$(sed -n 's/^missed:.*sampler behind schedule: \([0-9]*\).*/\1/p' "$work/soak.txt")
drain_behind=$(sed -n 's/^dropped:.*drain behind: \([0-9]*\).*/\1/p' "$work/soak.txt")
# Memory may grow only with new distinct stacks by address (a leaf anywhere in malloc is a
# stack of its own; bounded by STACKSAMPLE_MAX_STACKS): allowed 1 KB per distinct stack plus
# 1 MB after the warm-up. The heap outside the stack table must stay within 64 KB.
stacks=$(sed -n 's/^stacks: *\([0-9]*\) distinct.*/\1/p' "$work/soak.txt")
minutes=$(awk -v s="$seconds" -v w="$warmup" 'BEGIN { print (s - w) / 60 }')
awk -v s="$slope" -v m="$minutes" -v n="$stacks" 'BEGIN { exit !(s != "nan" && s * m <= n + 1024) }' ||
    { echo "FAIL: resident memory grows by ${slope} KB/min, more than ${stacks} distinct stacks explain"; exit 1; }
awk -v s="$own_slope" -v m="$minutes" 'BEGIN { exit !(s != "nan" && s * m <= 64) }' ||
    { echo "FAIL: the library's heap outside its stack table grows by ${own_slope} KB/min"; exit 1; }
((drain_behind == 0)) || { echo "FAIL: ${drain_behind} samples dropped, drain behind"; exit 1; }
# Each tick the sampler was too late for is one sample lost from every sampled thread.
ticks=$((seconds * 1000))
echo "sampler behind schedule: ${behind} of ${ticks} ticks"
((behind * 100 <= ticks)) ||
    { echo "FAIL: more than 1% of ticks lost to the sampler falling behind"; exit 1; }
echo "soak passed"
