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

# The Python package, built from the repo by pip (setuptools-rust builds the library) into a
# venv under target/, and its tests: the seed API's examples and the stacksample module.
python3 -m venv target/pyvenv
target/pyvenv/bin/pip install -q --upgrade pytest ./python
target/pyvenv/bin/python -m pytest -q python/tests
