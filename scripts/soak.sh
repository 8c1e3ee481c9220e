#!/usr/bin/env bash
# The long part of the reliability gauntlet (preload-test/gauntlet.rs):
#   1. the time-scaled gauntlet cases at full length (STACKSAMPLE_GAUNTLET_LONG=1: the
#      interrupted allocator for 20 s at 10 kHz, a million distinct stacks at the default
#      table size, ...), unless SOAK_ONLY=1;
#   2. a soak: a four-thread allocating program profiled at 1 kHz with every thread sampled
#      for SOAK_SECONDS (default 600). Its resident memory is read every 10 s; the script
#      prints the slope after a one-minute warm-up and what the profile says was lost, and
#      fails if memory grew by more than 100 KB a minute, if any sample was dropped because
#      the drain fell behind, or if more than 1% of ticks were lost to the sampler falling
#      behind (a machine busy with other work delays the sampler thread now and then).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SOAK_SECONDS:-600}
warmup=$((seconds < 120 ? seconds / 4 : 60))

scripts/install-deps.sh
cargo build --release
if [[ ${SOAK_ONLY:-0} != 1 ]]; then
    STACKSAMPLE_GAUNTLET_LONG=1 cargo test --release --test preload gauntlet -- --test-threads=1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -g -o "$work/alloc_storm" preload-test/programs/alloc_storm.c -lpthread
LD_PRELOAD="$PWD/target/release/libstacksample.so" STACKSAMPLE_TID=all \
    STACKSAMPLE_INTERVAL=1ms STACKSAMPLE_OUTPUT="$work/soak" \
    "$work/alloc_storm" 4 "$seconds" >"$work/stdout" &
pid=$!
started=$(date +%s)
: >"$work/rss"
while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [[ -n $rss ]] && echo "$(($(date +%s) - started)) $rss" >>"$work/rss"
    sleep 10
done
wait "$pid"
grep -qx "done 4" "$work/stdout"

echo "resident memory (seconds, KB):"
tr '\n' ' ' <"$work/rss"
echo
# Least-squares slope of resident memory after the warm-up, in KB per minute.
slope=$(awk -v warmup="$warmup" '$1 >= warmup { n++; sx += $1; sy += $2; sxx += $1 * $1; sxy += $1 * $2 }
    END { if (n < 2) { print "nan"; exit } d = n * sxx - sx * sx; printf "%.1f", d ? 60 * (n * sxy - sx * sy) / d : 0 }' "$work/rss")
echo "slope after ${warmup} s of warm-up: ${slope} KB/min"
grep -E '^(samples|missed|dropped|truncated|handler time):' "$work/soak.txt"

behind=$(sed -n 's/^missed:.*sampler behind schedule: \([0-9]*\).*/\1/p' "$work/soak.txt")
drain_behind=$(sed -n 's/^dropped:.*drain behind: \([0-9]*\).*/\1/p' "$work/soak.txt")
awk -v s="$slope" 'BEGIN { exit !(s != "nan" && s < 100) }' ||
    { echo "FAIL: resident memory grows by ${slope} KB/min"; exit 1; }
((drain_behind == 0)) || { echo "FAIL: ${drain_behind} samples dropped, drain behind"; exit 1; }
requested=$(sed -n 's/^samples:.* of \([0-9]*\) requested.*/\1/p' "$work/soak.txt")
echo "sampler behind schedule: ${behind} of $((requested + behind)) thread ticks"
((behind * 100 <= requested)) ||
    { echo "FAIL: more than 1% of ticks lost to the sampler falling behind"; exit 1; }
echo "soak passed"
