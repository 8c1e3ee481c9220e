#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain, from Debian (as root):
#   gcc, g++, binutils  build the C and C++ fixtures in preload-test/programs (one static:
#                       libc6-dev), and strip them
#   util-linux          `unshare`, for the thread-id tests; `setpriv`, for the set-user-ID test
#   bsdutils            `script`, a terminal for the test of record's progress line
#   libc6-dbg           libc's debug file, whose symbol table names libc's internal functions
#   golang-go           `go tool pprof`, the real consumer the pprof output is checked with
#   python3, python3-venv  the Python package's tests (pip fetches setuptools-rust and pytest
#                          from PyPI into a venv under target/)
#   libgoogle-perftools4  tcmalloc, the allocator the gauntlet preloads beside the library
#   perl, gzip, xz-utils, bzip2, sqlite3, make
#                       real programs the gauntlet runs plain and profiled
#   chromium, nodejs, npm  scripts/check-svg-browser.sh opens the flame graph in headless Chromium,
#                          driven by playwright-core (npm fetches it into a scratch dir)
set -euo pipefail

missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v c++ >/dev/null || missing+=(g++)
command -v objcopy >/dev/null || missing+=(binutils)
command -v unshare >/dev/null || missing+=(util-linux)
command -v setpriv >/dev/null || missing+=(util-linux)
command -v script >/dev/null || missing+=(bsdutils)
dpkg -s libc6-dbg >/dev/null 2>&1 || missing+=(libc6-dbg)
command -v go >/dev/null || missing+=(golang-go)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
[[ -e /usr/lib/x86_64-linux-gnu/libtcmalloc.so.4 ]] || missing+=(libgoogle-perftools4)
[[ -x /usr/bin/perl ]] || missing+=(perl)
[[ -x /usr/bin/python3 ]] || missing+=(python3)
[[ -x /usr/bin/gzip ]] || missing+=(gzip)
[[ -x /usr/bin/xz ]] || missing+=(xz-utils)
[[ -x /usr/bin/bzip2 ]] || missing+=(bzip2)
[[ -x /usr/bin/sqlite3 ]] || missing+=(sqlite3)
[[ -x /usr/bin/make ]] || missing+=(make)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
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
