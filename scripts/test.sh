#!/usr/bin/env bash
# Runs every check and test: formatting, clippy (warnings are errors), unit tests, and the
# integration tests in preload-test/ that run real C programs under LD_PRELOAD, and the flame
# graph in a headless browser.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
cargo test --release
scripts/check-svg-browser.sh

# The Python wheel (scripts/build-wheel.sh), installed into a fresh venv with no Rust
# toolchain on PATH, and its tests run against it: the seed API's examples, numba's shapes
# and the stacksample module.
wheel=$(scripts/build-wheel.sh | tail -n 1)
rm -rf target/pyvenv
python3 -m venv target/pyvenv
no_rust_path=/usr/local/bin:/usr/bin:/bin
if PATH=$no_rust_path command -v cargo >/dev/null; then
    echo "test.sh: cargo is on $no_rust_path; the wheel test needs a PATH without Rust" >&2
    exit 1
fi
PATH=$no_rust_path target/pyvenv/bin/pip install -q pytest "$wheel"
(cd target && PATH=$no_rust_path pyvenv/bin/python -m pytest -q -p no:cacheprovider ../python/tests)
