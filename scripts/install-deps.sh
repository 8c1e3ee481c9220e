#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain: a C compiler for the fixtures in
# preload-test/programs and `unshare` (util-linux) for the thread-id tests. Debian, as root.
set -euo pipefail

missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v unshare >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$component"
    fi
done
