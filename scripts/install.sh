#!/usr/bin/env bash
# Builds stacksample and installs the command and the library under one prefix:
#   PREFIX/bin/stacksample   (finds the library at ../lib/libstacksample.so)
#   PREFIX/lib/libstacksample.so
#   both without debug sections; their debug info beside them (stacksample.debug,
#   libstacksample.so.debug), found by gdb through each file's .gnu_debuglink
#   PREFIX/include/stacksample.h and PREFIX/lib/pkgconfig/stacksample.pc, so C programs
#   build with `pkg-config --cflags --libs stacksample` (PKG_CONFIG_PATH=PREFIX/lib/pkgconfig)
#   PREFIX/share/man/man1/stacksample.1 and a stacksample-SUBCOMMAND.1 page per subcommand
#   completions: PREFIX/share/bash-completion/completions/stacksample,
#   PREFIX/share/zsh/site-functions/_stacksample, PREFIX/share/fish/vendor_completions.d/
# Usage: scripts/install.sh [--prefix DIR]   (default: $HOME/.local)
set -euo pipefail
cd "$(dirname "$0")/.."

prefix="${HOME:-/usr/local}/.local"
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
        --prefix=*) prefix="${1#--prefix=}"; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (use --prefix DIR)" >&2; exit 2 ;;
    esac
done
command -v objcopy >/dev/null ||
    { echo "install.sh: objcopy is missing (Debian: apt-get install binutils)" >&2; exit 1; }

# The same build as the README's and the tests': when it is current, cargo does nothing.
cargo build --release
target="${CARGO_TARGET_DIR:-target}/release"

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
# A stripped copy of $1 named $2, and $2.debug with the debug sections it lost. The link holds
# the debug file's name and checksum; unwinding reads .eh_frame, which stripping keeps.
split_debug() {
    objcopy --only-keep-debug "$1" "$staging/$2.debug"
    objcopy --strip-debug --add-gnu-debuglink="$staging/$2.debug" "$1" "$staging/$2"
}
split_debug "$target/stacksample" stacksample
split_debug "$target/libstacksample.so" libstacksample.so

man="$prefix/share/man/man1"
bash_completions="$prefix/share/bash-completion/completions"
zsh_completions="$prefix/share/zsh/site-functions"
fish_completions="$prefix/share/fish/vendor_completions.d"
install -d "$prefix/bin" "$prefix/lib" "$prefix/lib/pkgconfig" "$prefix/include" "$man" \
    "$bash_completions" "$zsh_completions" "$fish_completions"
install -m 755 "$staging/stacksample" "$prefix/bin/stacksample"
install -m 644 "$staging/stacksample.debug" "$prefix/bin/stacksample.debug"
install -m 755 "$staging/libstacksample.so" "$prefix/lib/libstacksample.so"
install -m 644 "$staging/libstacksample.so.debug" "$prefix/lib/libstacksample.so.debug"
install -m 644 include/stacksample.h "$prefix/include/stacksample.h"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# The run path lets a program built with these flags find the library without
# LD_LIBRARY_PATH, as PREFIX is usually not a system directory.
cat >"$prefix/lib/pkgconfig/stacksample.pc" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: stacksample
Description: Sampling profiler for native call stacks: Timer, Profiler and one-shot stacks
Version: $version
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -lstacksample
Cflags: -I\${includedir}
PC
"$staging/stacksample" man --dir "$man"
"$staging/stacksample" completions bash >"$bash_completions/stacksample"
"$staging/stacksample" completions zsh >"$zsh_completions/_stacksample"
"$staging/stacksample" completions fish >"$fish_completions/stacksample.fish"
echo "installed $prefix/bin/stacksample and $prefix/lib/libstacksample.so (debug info in" \
    "*.debug beside them), stacksample.h and stacksample.pc, manual pages in $man," \
    "completions for bash, zsh and fish"
case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) echo "add $prefix/bin to PATH to run stacksample by name" ;;
esac
