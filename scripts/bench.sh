#!/usr/bin/env bash
# Benchmark: what profiling with libstacksample.so costs a program, and how right its stacks
# are, next to gperftools' libprofiler.so and perf record, on the workloads of
# preload-test/programs/ (see scripts/bench/bench.py for the workloads, the figures and the
# BENCH_* settings). Installs what it needs from Debian first: gcc, google-perftools and
# linux-perf. A profiler that still cannot run gets rows saying why.
#
# Usage: scripts/bench.sh            (about 15 minutes on 2 cores)
#        BENCH_RUNS=3 BENCH_WORKLOADS=hot,depth10 scripts/bench.sh
# Writes the tables to stdout and to scripts/bench-results.md.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v cc >/dev/null || missing+=(gcc)
[[ -e /usr/lib/x86_64-linux-gnu/libprofiler.so.0 ]] || missing+=(libgoogle-perftools4)
command -v google-pprof >/dev/null || missing+=(google-perftools)
command -v perf >/dev/null || missing+=(linux-perf)
if ((${#missing[@]})); then
    echo "bench.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "${missing[@]}" >&2 ||
        { apt-get update >&2 && apt-get install -y "${missing[@]}" >&2; } ||
        echo "bench.sh: could not install ${missing[*]}; their rows will say so" >&2
fi
exec python3 scripts/bench/bench.py "$@"
