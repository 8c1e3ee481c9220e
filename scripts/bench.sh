#!/usr/bin/env bash
# Benchmark: what profiling with libstacksample.so costs a CPU-bound program, next to the
# profilers a user would pick instead (gperftools' libprofiler.so and perf record).
#
# Two workloads from preload-test/programs/ are run plain and under each profiler configuration,
# interleaved (plain, config 1, config 2, ..., plain, config 1, ...) so that machine noise hits
# all modes alike:
#   hot      hot.c built with -fomit-frame-pointer, shallow stacks (hot_a/b/c 50/30/20)
#   recurse  recurse.c at depth 25, stacks of about 30 frames (built with plain -O2, which on
#            x86-64 also omits frame pointers)
# Profiler configurations, in this order, each at 100 Hz and 1000 Hz:
#   stacksample  LD_PRELOAD=libstacksample.so STACKSAMPLE_INTERVAL=10ms / 1ms
#   gperftools   LD_PRELOAD=libprofiler.so CPUPROFILE=FILE CPUPROFILE_FREQUENCY=100 / 1000
#   perf         perf record -e cpu-clock -F 100 / 1000 -g (frame pointers), then the same with
#                --call-graph dwarf
# Per run it records wall and user+sys CPU time and the bytes the profiler wrote. For stacksample
# it reads the samples taken and requested and the signal-handler time from the .txt report, and
# from the .folded file the share of samples whose stack reaches `main`. For gperftools it reads
# the samples taken from libprofiler's exit message and the share reaching `main` from
# `google-pprof --text` (cumulative count of main). For perf it counts the workload's samples in
# `perf script` output and those whose call chain contains `main`. Reports are read after all
# runs, outside the timed part.
#
# perf rows: "wall s" is the workload's own wall time, measured by a small fork/exec/wait helper
# that perf record runs; "command wall s" is the whole `perf record` command (perf's startup, and
# at exit up to 1 s that perf 6.1 waits on its BPF side-band thread). "CPU s" is always the whole
# command's user+sys, so for perf it includes the perf record process. For the LD_PRELOAD
# profilers the program is the command, so wall and command wall are the same measurement.
#
# A profiler that is missing is installed with apt-get (apt-get update only if the install fails
# without it); one that still cannot run (not installed, perf not permitted) gets rows saying so
# instead of ending the benchmark.
#
# Usage:
#   scripts/bench.sh
# Environment:
#   BENCH_RUNS=7                 runs per mode and workload
#   BENCH_ROUNDS=8000            rounds of hot (about 1 s plain)
#   BENCH_RECURSE_ROUNDS=400     rounds of recurse (about 1 s plain)
#   BENCH_PROFILERS=stacksample,gperftools,perf
#                                profilers to compare with the plain runs (comma-separated
#                                subset; the run order stays the one above)
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
profilers=${BENCH_PROFILERS:-stacksample,gperftools,perf}

# The exact invocation, with any BENCH_* settings in front.
command_line=""
for var in BENCH_RUNS BENCH_ROUNDS BENCH_RECURSE_ROUNDS BENCH_PROFILERS; do
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

[[ $runs =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$runs'"

want_stacksample=false want_gperftools=false want_perf=false
IFS=, read -ra wanted <<<"$profilers"
for name in "${wanted[@]}"; do
    name=${name//[[:space:]]/}
    case $name in
    stacksample) want_stacksample=true ;;
    gperftools) want_gperftools=true ;;
    perf) want_perf=true ;;
    "") ;;
    *) die "BENCH_PROFILERS: unknown profiler '$name' (known: stacksample, gperftools, perf)" ;;
    esac
done

# Modes in run order; modes.tsv lists every mode with a note, empty for the ones that run.
modes=(plain)
modes_file=$scratch/modes.tsv
printf 'plain\t\n' >"$modes_file"
# add_modes NOTE MODE...: NOTE is empty when the modes run.
add_modes() {
    local note=$1 mode
    shift
    for mode in "$@"; do
        printf '%s\t%s\n' "$mode" "$note" >>"$modes_file"
        [[ -n $note ]] || modes+=("$mode")
    done
}

# apt_install PACKAGE...: install with apt-get, running apt-get update first only if the plain
# install fails. Output goes to stderr; returns non-zero instead of exiting.
apt_install() {
    command -v apt-get >/dev/null || return 1
    echo "installing $* with apt-get..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >&2 && return 0
    DEBIAN_FRONTEND=noninteractive apt-get update >&2 || return 1
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >&2
}

find_libprofiler() {
    local path
    path=$(ldconfig -p 2>/dev/null | awk '$1 ~ /^libprofiler\.so/ { print $NF; exit }' || true)
    if [[ -z $path ]]; then
        path=$(dpkg -L libgoogle-perftools4 2>/dev/null |
            grep -E '/libprofiler\.so(\.[0-9]+)*$' | head -n 1 || true)
    fi
    [[ -n $path && -f $path ]] && echo "$path"
}

# First line of a file, for notes (tabs and pipes would break the TSV or the table).
first_line() {
    local line=""
    [[ -s $1 ]] && IFS= read -r line <"$1"
    line=${line//$'\t'/ }
    echo "${line//|/\\|}"
}

echo "building..." >&2
if $want_stacksample; then
    cargo build --release --quiet
    lib=$PWD/target/release/libstacksample.so
    [[ -f $lib ]] || die "$lib was not built"
fi
cc -O2 -fomit-frame-pointer -g -o "$scratch/hot" preload-test/programs/hot.c
cc -O2 -g -o "$scratch/recurse" preload-test/programs/recurse.c
# bench-timeit OUT PROGRAM ARGS...: runs PROGRAM, writes "wall user sys" of it to OUT and exits
# with its status. perf record runs this so that the workload's own wall time is known.
cat >"$scratch/timeit.c" <<'EOF'
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench-timeit OUT PROGRAM ARGS...\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 2;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("wait4");
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    FILE *f = fopen(argv[1], "w");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    fprintf(f, "%.3f %.3f %.3f\n",
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
            (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
            (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    if (fclose(f) != 0) {
        perror(argv[1]);
        return 2;
    }
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}
EOF
cc -O2 -o "$scratch/bench-timeit" "$scratch/timeit.c"

if $want_stacksample; then
    add_modes "" stacksample-100hz stacksample-1000hz
fi

libprofiler="" pprof=""
if $want_gperftools; then
    echo "checking gperftools..." >&2
    note=""
    libprofiler=$(find_libprofiler || true)
    if [[ -z $libprofiler ]] || ! command -v google-pprof >/dev/null; then
        apt_install google-perftools libgoogle-perftools4 || true
        libprofiler=$(find_libprofiler || true)
    fi
    pprof=$(command -v google-pprof || true)
    if [[ -z $libprofiler ]]; then
        note="unavailable: libprofiler.so not found (apt-get install google-perftools failed)"
    elif ! LD_PRELOAD=$libprofiler CPUPROFILE=$scratch/check.prof "$scratch/hot" 10 \
        >/dev/null 2>"$scratch/check-gperftools.err" || [[ ! -f $scratch/check.prof ]]; then
        note="unavailable: $libprofiler did not write a profile: $(first_line "$scratch/check-gperftools.err")"
    fi
    add_modes "$note" gperftools-100hz gperftools-1000hz
fi

if $want_perf; then
    echo "checking perf..." >&2
    note="" dwarf_note=""
    if ! command -v perf >/dev/null; then
        apt_install linux-perf || true
    fi
    if ! command -v perf >/dev/null; then
        note="unavailable: perf not found (apt-get install linux-perf failed)"
    elif ! perf record -e cpu-clock -F 100 -g -o "$scratch/check.data" true \
        >/dev/null 2>"$scratch/check-perf.err"; then
        note="unavailable: 'perf record -e cpu-clock -F 100 -g' failed (not permitted?"
        note+=" kernel.perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo '?')):"
        note+=" $(grep -m 1 -v '^\[ perf record' "$scratch/check-perf.err" | tr '\t|' '  ' || true)"
    elif ! perf record -e cpu-clock -F 100 --call-graph dwarf -o "$scratch/check.data" true \
        >/dev/null 2>"$scratch/check-perf.err"; then
        dwarf_note="unavailable: 'perf record --call-graph dwarf' failed:"
        dwarf_note+=" $(grep -m 1 -v '^\[ perf record' "$scratch/check-perf.err" | tr '\t|' '  ' || true)"
    fi
    add_modes "$note" perf-fp-100hz perf-fp-1000hz
    add_modes "${note:-$dwarf_note}" perf-dwarf-100hz perf-dwarf-1000hz
fi

# One line per run: workload mode run wall user sys command-wall data bytes samples, where wall
# is the program's own wall time, user and sys are the whole command's, data is the report
# prefix or profile file ("-" for plain runs) and samples is the count libprofiler reported.
runs_file=$scratch/runs.tsv
: >"$runs_file"

# bytes_of FILE...: total size.
bytes_of() {
    local total=0 file
    for file in "$@"; do
        total=$((total + $(stat -c %s "$file")))
    done
    echo "$total"
}

# run WORKLOAD MODE INDEX PROGRAM ARGS...; MODE is one of the modes above.
run() {
    local workload=$1 mode=$2 index=$3
    shift 3
    local tag=$workload-$mode-$index
    local out=$scratch/$tag.out err=$scratch/$tag.err times=$scratch/$tag.time
    local inner=$scratch/$tag.inner
    local data=- bytes=- samples=- status=0 hz=${mode##*-}
    hz=${hz%hz}
    local TIMEFORMAT='%3R %3U %3S'
    case $mode in
    plain)
        { time "$@" >"$out" 2>"$err"; } 2>"$times" || status=$?
        ;;
    stacksample-*)
        local interval=10ms
        [[ $hz == 1000 ]] && interval=1ms
        data=$scratch/prof-$tag
        { time LD_PRELOAD=$lib STACKSAMPLE_INTERVAL=$interval \
            STACKSAMPLE_OUTPUT="$data-%p" "$@" >"$out" 2>"$err"; } 2>"$times" || status=$?
        ;;
    gperftools-*)
        data=$scratch/$tag.prof
        { time LD_PRELOAD=$libprofiler CPUPROFILE=$data CPUPROFILE_FREQUENCY=$hz \
            "$@" >"$out" 2>"$err"; } 2>"$times" || status=$?
        ;;
    perf-fp-* | perf-dwarf-*)
        local call_graph=(-g)
        [[ $mode == perf-dwarf-* ]] && call_graph=(--call-graph dwarf)
        data=$scratch/$tag.data
        { time perf record -e cpu-clock -F "$hz" "${call_graph[@]}" -o "$data" -- \
            "$scratch/bench-timeit" "$inner" "$@" >"$out" 2>"$err"; } 2>"$times" || status=$?
        ;;
    *) die "unknown mode $mode" ;;
    esac
    if ((status != 0)); then
        cat "$err" >&2
        die "$tag: '$*' exited with status $status"
    fi
    if ! grep -qxE 'done [0-9]+' "$out" || [[ $(wc -l <"$out") -ne 1 ]]; then
        cat "$out" "$err" >&2
        die "$tag: '$*' did not print the expected 'done N' line"
    fi
    case $mode in
    stacksample-*)
        local reports=("$data"-*.txt)
        if ((${#reports[@]} != 1)) || [[ ! -f ${reports[0]} ]]; then
            die "$tag: expected one report $data-<pid>.txt, found: ${reports[*]}"
        fi
        bytes=$(bytes_of "$data"-*)
        data=${reports[0]%.txt}
        [[ -f $data.folded ]] || die "$tag: $data.folded is missing"
        ;;
    gperftools-*)
        [[ -f $data ]] || die "$tag: libprofiler wrote no $data"
        bytes=$(bytes_of "$data")
        samples=$(sed -n 's|^PROFILE: interrupts/evictions/bytes = \([0-9]*\)/.*|\1|p' "$err")
        [[ -n $samples ]] || samples=-
        ;;
    perf-*)
        [[ -f $data ]] || die "$tag: perf record wrote no $data"
        [[ -s $inner ]] || die "$tag: bench-timeit wrote no times"
        bytes=$(bytes_of "$data")
        ;;
    esac
    local wall user sys command_wall inner_user inner_sys
    read -r command_wall user sys <"$times"
    wall=$command_wall
    [[ $mode == perf-* ]] && read -r wall inner_user inner_sys <"$inner"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$workload" "$mode" "$index" \
        "$wall" "$user" "$sys" "$command_wall" "$data" "$bytes" "$samples" >>"$runs_file"
}

# bench WORKLOAD PROGRAM ARGS...: one unrecorded warm-up, then interleaved runs of all modes.
bench() {
    local workload=$1
    shift
    echo "$workload: warm-up, then $runs x (${modes[*]})..." >&2
    "$@" >/dev/null || die "$workload: warm-up '$*' exited with status $?"
    local i mode
    for ((i = 1; i <= runs; i++)); do
        for mode in "${modes[@]}"; do
            run "$workload" "$mode" "$i" "$@"
        done
    done
}

bench hot "$scratch/hot" "$hot_rounds"
bench recurse "$scratch/recurse" "$recurse_depth" "$recurse_rounds"

echo "reading profiles..." >&2
header="Benchmark $(date '+%Y-%m-%d %H:%M:%S %z'), kernel $(uname -r), $(nproc) CPUs: \`$command_line\`"
header+=" ($runs interleaved runs per mode; hot $hot_rounds rounds, recurse depth $recurse_depth"
header+=" x $recurse_rounds rounds)"
versions=""
[[ -n $libprofiler ]] && versions+="gperftools: \`$libprofiler\`"
[[ -n $libprofiler ]] && command -v dpkg-query >/dev/null &&
    versions+=" $(dpkg-query -W -f '${Version}' libgoogle-perftools4 2>/dev/null || true)"
if $want_perf && command -v perf >/dev/null; then
    [[ -n $versions ]] && versions+="; "
    versions+="$(perf version 2>/dev/null || echo 'perf: version unknown')"
fi

python3 - "$runs_file" "$modes_file" "$header" "$versions" "${pprof:--}" \
    "hot=$scratch/hot" "recurse=$scratch/recurse" >"$scratch/table.md" <<'EOF'
import os
import re
import subprocess
import sys
from statistics import median

runs_file, modes_file, header, versions, pprof = sys.argv[1:6]
programs = dict(arg.split("=", 1) for arg in sys.argv[6:])
SAMPLES = re.compile(r"^samples:\s+(\d+) in profile, (\d+) taken of (\d+) requested$")
HANDLER = re.compile(r"^handler time: median ([\d.]+) us, p99 ([\d.]+) us, max ([\d.]+) us$")
PPROF_TOTAL = re.compile(r"^Total: (\d+) samples$")
PPROF_MAIN = re.compile(r"^\s*\d+\s+[\d.]+%\s+[\d.]+%\s+(\d+)\s+[\d.]+%\s+main$")
LABELS = {
    "plain": "plain",
    "stacksample-100hz": "stacksample 100 Hz",
    "stacksample-1000hz": "stacksample 1000 Hz",
    "gperftools-100hz": "gperftools 100 Hz",
    "gperftools-1000hz": "gperftools 1000 Hz",
    "perf-fp-100hz": "perf -g 100 Hz",
    "perf-fp-1000hz": "perf -g 1000 Hz",
    "perf-dwarf-100hz": "perf dwarf 100 Hz",
    "perf-dwarf-1000hz": "perf dwarf 1000 Hz",
}


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
    return {"taken": taken, "requested": requested, "h_median": h_median, "h_p99": h_p99,
            "share": share}


def read_pprof(program, profile):
    """Share of samples whose stack reaches main, from google-pprof's cumulative counts."""
    if pprof == "-":
        return {}
    # --no-auto-signal-frm: otherwise pprof drops the second frame of every stack when it is
    # the same in all of them, taking it for the profiler's signal frame (it is `recurse`).
    result = subprocess.run([pprof, "--text", "--no-auto-signal-frm", program, profile],
                            capture_output=True, text=True)
    if result.returncode != 0:  # an older pprof without the option
        result = subprocess.run([pprof, "--text", program, profile], capture_output=True,
                                text=True)
    total = with_main = None
    for line in result.stdout.splitlines():
        if m := PPROF_TOTAL.match(line):
            total = int(m[1])
        elif m := PPROF_MAIN.match(line):
            with_main = int(m[1])
    if result.returncode != 0 or total is None:
        print(f"bench.sh: google-pprof --text {profile} failed: {result.stderr.strip()}",
              file=sys.stderr)
        return {}
    return {"share": (with_main or 0) / total if total else float("nan")}


def read_perf(comm, data):
    """The workload's samples in perf script output, and the share whose chain has main."""
    result = subprocess.run(["perf", "script", "-F", "comm,ip,sym", "-i", data],
                            capture_output=True, text=True)
    if result.returncode != 0:
        print(f"bench.sh: perf script -i {data} failed: {result.stderr.strip()}", file=sys.stderr)
        return {}
    total = with_main = 0
    ours = has_main = False

    def finish():
        nonlocal total, with_main
        if ours:
            total += 1
            with_main += has_main

    for line in result.stdout.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():  # sample header: the comm
            finish()
            ours, has_main = line.strip() == comm, False
        else:
            fields = line.split()
            if len(fields) > 1 and fields[1] == "main":
                has_main = True
    finish()
    return {"taken": total, "share": with_main / total if total else float("nan")}


modes, notes = [], {}
for line in open(modes_file):
    mode, note = line.rstrip("\n").split("\t")
    modes.append(mode)
    notes[mode] = note

rows = {}  # (workload, mode) -> list of per-run dicts
for line in open(runs_file):
    workload, mode, _, wall, user, sys_, command_wall, data, bytes_, samples = (
        line.rstrip("\n").split("\t"))
    run = {"wall": float(wall), "cpu": float(user) + float(sys_),
           "command_wall": float(command_wall)}
    if bytes_ != "-":
        run["bytes"] = int(bytes_)
    if samples != "-":
        run["taken"] = int(samples)
    if mode.startswith("stacksample-"):
        run.update(read_report(data))
    elif mode.startswith("gperftools-"):
        run.update(read_pprof(programs[workload], data))
    elif mode.startswith("perf-"):
        run.update(read_perf(os.path.basename(programs[workload])[:15], data))
    rows.setdefault((workload, mode), []).append(run)


def med(runs, key, fmt):
    values = [r[key] for r in runs if key in r]
    if len(values) != len(runs):
        return "-"
    return fmt(median(values))


out = [
    header,
    "",
    "Wall s is the program's own wall time; CPU s is user+sys of the whole command, for perf"
    " including the perf record process; command wall s is the whole command, for perf"
    " including its startup and exit. Medians over runs.",
]
if versions:
    out += ["", versions + "."]
out += [
    "",
    "| workload | mode | wall s | wall ratio | CPU s | CPU ratio | command wall s | samples taken"
    " | samples requested | handler median us | handler p99 us | samples reaching main"
    " | bytes written | note |",
    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
]
for workload in programs:
    plain = rows[(workload, "plain")]
    for mode in modes:
        label = LABELS.get(mode, mode)
        if notes[mode]:
            out.append(f"| {workload} | {label} | " + " | ".join(["-"] * 11)
                       + f" | {notes[mode]} |")
            continue
        runs = rows[(workload, mode)]
        wall, cpu = median(r["wall"] for r in runs), median(r["cpu"] for r in runs)
        cells = [
            workload,
            label,
            f"{wall:.3f}",
            f"{wall / median(r['wall'] for r in plain):.3f}",
            f"{cpu:.3f}",
            f"{cpu / median(r['cpu'] for r in plain):.3f}",
            f"{median(r['command_wall'] for r in runs):.3f}",
            med(runs, "taken", lambda v: f"{v:g}"),
            med(runs, "requested", lambda v: f"{v:g}"),
            med(runs, "h_median", lambda v: f"{v:.2f}"),
            med(runs, "h_p99", lambda v: f"{v:.2f}"),
            med(runs, "share", lambda v: f"{100 * v:.1f}%"),
            med(runs, "bytes", lambda v: f"{v:,.0f}"),
            "",
        ]
        out.append("| " + " | ".join(cells) + " |")
print("\n".join(out))
EOF

cp "$scratch/table.md" scripts/bench-results.md
cat "$scratch/table.md"
