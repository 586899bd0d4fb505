#!/usr/bin/env bash
# Sets up, builds, and runs the whole test suite. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh --setup test
cd build
# --no-tests=error: a build without GoogleTest has no tests, which must not pass as green.
ctest --output-on-failure --no-tests=error -j"$(nproc)"
