#!/usr/bin/env bash
# Builds stacksample and installs the command and the library under one prefix:
#   PREFIX/bin/stacksample   (finds the library at ../lib/libstacksample.so)
#   PREFIX/lib/libstacksample.so
# Usage: scripts/install.sh [--prefix DIR]   (default: $HOME/.local)
set -euo pipefail
cd "$(dirname "$0")/.."

prefix="${HOME:-/usr/local}/.local"
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
        --prefix=*) prefix="${1#--prefix=}"; shift ;;
        -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (use --prefix DIR)" >&2; exit 2 ;;
    esac
done

cargo build --release
target="${CARGO_TARGET_DIR:-target}/release"
install -d "$prefix/bin" "$prefix/lib"
install -m 755 "$target/stacksample" "$prefix/bin/stacksample"
install -m 755 "$target/libstacksample.so" "$prefix/lib/libstacksample.so"
echo "installed $prefix/bin/stacksample and $prefix/lib/libstacksample.so"
case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) echo "add $prefix/bin to PATH to run stacksample by name" ;;
esac
