#!/usr/bin/env bash
# What Python frames cost: a CPU-bound Python loop 50 frames deep without a profiler, under
# stacksample with Python frames off and on, and under `py-spy record --native` (installed
# from PyPI into target/bench-tools; it needs ptrace, so run as root or with CAP_SYS_PTRACE),
# at 100 Hz and 1 kHz. See scripts/bench/python_frames.py for the settings.
#
# Usage: cargo build --release && scripts/bench-python.sh     (about 2 minutes)
#        PYBENCH_PYTHON=~/.pyenv/versions/3.12.1/bin/python PYBENCH_RUNS=3 scripts/bench-python.sh
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/bench/python_frames.py "$@"
