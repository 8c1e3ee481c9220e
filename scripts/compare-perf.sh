#!/usr/bin/env bash
# Measurement, not a test: where stacksample and perf say the time went, on python3, perl,
# sqlite3 and a C++ compile (cc1plus), as the total variation distance between their splits
# of self time by function, next to perf's distance to its own second run (see
# scripts/compare_perf.py for the workloads, the metric and the COMPARE_* settings).
# Installs what it needs from Debian first and builds the library if it is missing.
#
# Usage: scripts/compare-perf.sh                      (about 2 minutes on 2 cores)
#        COMPARE_PROGRAMS=perl,sqlite3 scripts/compare-perf.sh
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v perf >/dev/null || missing+=(linux-perf)
command -v g++ >/dev/null || missing+=(g++)
[[ -x /usr/bin/python3 ]] || missing+=(python3)
[[ -x /usr/bin/perl ]] || missing+=(perl)
[[ -x /usr/bin/sqlite3 ]] || missing+=(sqlite3)
dpkg -s libc6-dbg >/dev/null 2>&1 || missing+=(libc6-dbg)
if ((${#missing[@]})); then
    echo "compare-perf.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "${missing[@]}" >&2 ||
        { apt-get update >&2 && apt-get install -y "${missing[@]}" >&2; }
fi
[[ -n "${COMPARE_LIBRARY:-}" || -e target/release/libstacksample.so ]] || cargo build --release
exec python3 scripts/compare_perf.py "$@"
