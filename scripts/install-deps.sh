#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain, from Debian (as root):
#   gcc, g++, binutils  build the C and C++ fixtures in preload-test/programs (one static:
#                       libc6-dev), and strip them
#   util-linux          `unshare`, for the thread-id tests
#   golang-go           `go tool pprof`, the real consumer the pprof output is checked with
#   python3, python3-venv  the Python package's tests (pip fetches setuptools-rust and pytest
#                          from PyPI into a venv under target/)
set -euo pipefail

missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v c++ >/dev/null || missing+=(g++)
command -v objcopy >/dev/null || missing+=(binutils)
command -v unshare >/dev/null || missing+=(util-linux)
command -v go >/dev/null || missing+=(golang-go)
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$component"
    fi
done
