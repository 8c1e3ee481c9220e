#!/usr/bin/env bash
# Runs every check and test: formatting, clippy (warnings are errors), unit tests, and the
# integration tests in preload-test/ that run real C programs under LD_PRELOAD.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
cargo test --release
