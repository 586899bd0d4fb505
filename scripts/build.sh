#!/usr/bin/env bash
# Configures and builds fedlora into ./build (Release, ccache). Usage: scripts/build.sh [targets...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# ccache: paths relative to the checkout, so another clone of the same sources hits the cache.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
if [[ ! -f build/CMakeCache.txt ]]; then
  cmake -S . -B build "${gen[@]}" -DCMAKE_BUILD_TYPE=Release
fi
jobs=$(nproc)
if (($# > 0)); then
  cmake --build build -j"$jobs" --target "$@"
else
  cmake --build build -j"$jobs"
fi
