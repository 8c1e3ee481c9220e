#!/usr/bin/env bash
# Benchmark: what profiling with libstacksample.so costs a CPU-bound program.
#
# Two workloads from preload-test/programs/ are run plain (A), profiled at 100 Hz (B) and
# profiled at 1000 Hz (C), interleaved as A B C A B C ... so that machine noise hits all three
# modes alike:
#   hot      hot.c built with -fomit-frame-pointer, shallow stacks (hot_a/b/c 50/30/20)
#   recurse  recurse.c at depth 25, stacks of about 30 frames
# Per run it records wall and user+sys CPU time; per profiled run it reads the samples taken and
# requested and the signal-handler time from the .txt report, and from the .folded file the
# share of samples whose stack reaches `main`.
#
# Usage:
#   scripts/bench.sh
# Environment:
#   BENCH_RUNS=7                 runs per mode and workload
#   BENCH_ROUNDS=8000            rounds of hot (about 1 s plain)
#   BENCH_RECURSE_ROUNDS=400     rounds of recurse (about 1 s plain)
#
# Prints a Markdown table and writes it to scripts/bench-results.md (overwritten). Ratios are
# median(profiled) / median(plain) over interleaved runs of the same session; the machine this
# was written on has 2 noisy cores, so differences of a few percent are within noise.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${BENCH_RUNS:-7}
hot_rounds=${BENCH_ROUNDS:-8000}
recurse_rounds=${BENCH_RECURSE_ROUNDS:-400}
recurse_depth=25

# The exact invocation, with any BENCH_* settings in front.
command_line=""
for var in BENCH_RUNS BENCH_ROUNDS BENCH_RECURSE_ROUNDS; do
    if [[ -n ${!var:-} ]]; then
        command_line+="$var=$(printf '%q' "${!var}") "
    fi
done
command_line+=$(printf '%q' "$0")
for arg in "$@"; do
    command_line+=" $(printf '%q' "$arg")"
done

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

die() {
    echo "bench.sh: $*" >&2
    exit 1
}

echo "building..." >&2
cargo build --release --quiet
lib=$PWD/target/release/libstacksample.so
[[ -f $lib ]] || die "$lib was not built"
cc -O2 -fomit-frame-pointer -g -o "$scratch/hot" preload-test/programs/hot.c
cc -O2 -g -o "$scratch/recurse" preload-test/programs/recurse.c

# One line per run: workload mode run wall user sys prefix ("-" for plain runs).
runs_file=$scratch/runs.tsv
: >"$runs_file"

# run WORKLOAD MODE INDEX PROGRAM ARGS...; MODE is plain, 100hz or 1000hz.
run() {
    local workload=$1 mode=$2 index=$3
    shift 3
    local tag=$workload-$mode-$index
    local out=$scratch/$tag.out err=$scratch/$tag.err times=$scratch/$tag.time
    local prefix=- status=0
    local TIMEFORMAT='%3R %3U %3S'
    if [[ $mode == plain ]]; then
        { time "$@" >"$out" 2>"$err"; } 2>"$times" || status=$?
    else
        local interval=10ms
        [[ $mode == 1000hz ]] && interval=1ms
        prefix=$scratch/prof-$tag
        { time LD_PRELOAD=$lib STACKSAMPLE_INTERVAL=$interval \
            STACKSAMPLE_OUTPUT="$prefix-%p" "$@" >"$out" 2>"$err"; } 2>"$times" || status=$?
    fi
    if ((status != 0)); then
        cat "$err" >&2
        die "$tag: '$*' exited with status $status"
    fi
    if ! grep -qxE 'done [0-9]+' "$out" || [[ $(wc -l <"$out") -ne 1 ]]; then
        cat "$out" "$err" >&2
        die "$tag: '$*' did not print the expected 'done N' line"
    fi
    if [[ $prefix != - ]]; then
        local reports=("$prefix"-*.txt)
        if ((${#reports[@]} != 1)) || [[ ! -f ${reports[0]} ]]; then
            die "$tag: expected one report $prefix-<pid>.txt, found: ${reports[*]}"
        fi
        prefix=${reports[0]%.txt}
        [[ -f $prefix.folded ]] || die "$tag: $prefix.folded is missing"
    fi
    local wall user sys
    read -r wall user sys <"$times"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$workload" "$mode" "$index" "$wall" "$user" "$sys" "$prefix" >>"$runs_file"
}

# bench WORKLOAD PROGRAM ARGS...: one unrecorded warm-up, then interleaved A B C runs.
bench() {
    local workload=$1
    shift
    echo "$workload: warm-up, then $runs x (plain, 100 Hz, 1000 Hz)..." >&2
    "$@" >/dev/null || die "$workload: warm-up '$*' exited with status $?"
    local i mode
    for ((i = 1; i <= runs; i++)); do
        for mode in plain 100hz 1000hz; do
            run "$workload" "$mode" "$i" "$@"
        done
    done
}

bench hot "$scratch/hot" "$hot_rounds"
bench recurse "$scratch/recurse" "$recurse_depth" "$recurse_rounds"

header="Benchmark $(date '+%Y-%m-%d %H:%M:%S %z'), kernel $(uname -r), $(nproc) CPUs: \`$command_line\`"
header+=" ($runs interleaved runs per mode; hot $hot_rounds rounds, recurse depth $recurse_depth"
header+=" x $recurse_rounds rounds)"

python3 - "$runs_file" "$header" >"$scratch/table.md" <<'EOF'
import re
import sys
from statistics import median

runs_file, header = sys.argv[1], sys.argv[2]
SAMPLES = re.compile(r"^samples:\s+(\d+) in profile, (\d+) taken of (\d+) requested$")
HANDLER = re.compile(r"^handler time: median ([\d.]+) us, p99 ([\d.]+) us, max ([\d.]+) us$")


def read_report(prefix):
    """Samples taken and requested and handler median/p99 from .txt; share reaching main."""
    taken = requested = h_median = h_p99 = None
    with open(prefix + ".txt") as f:
        for line in f:
            line = line.rstrip("\n")
            if m := SAMPLES.match(line):
                taken, requested = int(m[2]), int(m[3])
            elif m := HANDLER.match(line):
                h_median, h_p99 = float(m[1]), float(m[2])
    if taken is None or h_median is None:
        sys.exit(f"bench.sh: {prefix}.txt lacks the samples: or handler time: line")
    total = with_main = 0
    with open(prefix + ".folded") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            total += int(count)
            if "main" in stack.split(";"):
                with_main += int(count)
    share = with_main / total if total else float("nan")
    return taken, requested, h_median, h_p99, share


rows = {}  # (workload, mode) -> list of per-run dicts
for line in open(runs_file):
    workload, mode, _, wall, user, sys_, prefix = line.rstrip("\n").split("\t")
    run = {"wall": float(wall), "cpu": float(user) + float(sys_)}
    if prefix != "-":
        keys = ("taken", "requested", "h_median", "h_p99", "share")
        run.update(zip(keys, read_report(prefix)))
    rows.setdefault((workload, mode), []).append(run)


def med(runs, key):
    return median(r[key] for r in runs)


out = [
    header,
    "",
    "| workload | mode | wall s | wall ratio | CPU s | CPU ratio | samples taken"
    " | samples requested | handler median us | handler p99 us | samples reaching main |",
    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
]
for (workload, mode), runs in rows.items():
    plain = rows[(workload, "plain")]
    wall, cpu = med(runs, "wall"), med(runs, "cpu")
    cells = [
        workload,
        mode,
        f"{wall:.3f}",
        f"{wall / med(plain, 'wall'):.3f}",
        f"{cpu:.3f}",
        f"{cpu / med(plain, 'cpu'):.3f}",
    ]
    if mode == "plain":
        cells += ["-"] * 5
    else:
        cells += [
            f"{med(runs, 'taken'):g}",
            f"{med(runs, 'requested'):g}",
            f"{med(runs, 'h_median'):.2f}",
            f"{med(runs, 'h_p99'):.2f}",
            f"{100 * med(runs, 'share'):.1f}%",
        ]
    out.append("| " + " | ".join(cells) + " |")
print("\n".join(out))
EOF

cp "$scratch/table.md" scripts/bench-results.md
cat "$scratch/table.md"
