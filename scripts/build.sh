#!/usr/bin/env bash
# Sets up and builds fedlora into ./build (Release, Ninja, ccache).
# Usage: scripts/build.sh [--setup main|test|bench|all] [targets...]
#   --setup  which packages scripts/setup.sh installs first (default: all); the tests and
#            benches are configured only when their libraries are installed (CMakeLists.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=all
if [[ ${1:-} == --setup ]]; then
  profile=${2:?"--setup needs a profile: main, test, bench or all"}
  shift 2
fi
bash scripts/setup.sh "$profile"
# ccache: paths relative to the checkout, so another clone of the same sources hits the cache;
# the sloppiness lets it cache translation units built with a precompiled header (FEDLORA_PCH).
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
# Configure on the first build, and again when the profile changes: a profile that installed
# GoogleTest or Google Benchmark since the last configure adds the tests or benches.
if [[ ! -f build/CMakeCache.txt || $(cat build/.setup-profile 2>/dev/null) != "$profile" ]]; then
  cmake -S . -B build "${gen[@]}" -DCMAKE_BUILD_TYPE=Release
  echo "$profile" > build/.setup-profile
fi
jobs=$(nproc)
if (($# > 0)); then
  cmake --build build -j"$jobs" --target "$@"
else
  cmake --build build -j"$jobs"
fi
