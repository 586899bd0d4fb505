#!/usr/bin/env bash
# Installs the Debian 12 packages a fedlora command needs. Idempotent; run as root (or with sudo).
# Usage: scripts/setup.sh [main|test|bench|all] [--print]
#   main   build the `fedlora` CLI and run the main job (scripts/run_main.sh)
#   test   main + GoogleTest, pybind11 and pytest (scripts/test.sh), and PostgreSQL 15 with
#          libpq (the coordinator's PostgreSQL store is built when libpq is found, and its tests
#          start a throwaway server), and HAProxy 2.6 (the multi-host process tests and
#          `fedlora cluster` put it in front of the coordinators); node-llama-cpp for the GGUF check is installed by its
#          ctest fixture (scripts/setup_llamacpp.sh)
#   bench  main + Google Benchmark and Python PyTorch (the benches' peer, bench/peer.h)
#   all    everything (the default)
#   --print  list the profile's packages, one a line, and install nothing
# CMake builds the tests only when GoogleTest is found and the benches only when Google
# Benchmark is, so a `main` machine still configures and builds every other target.
set -euo pipefail
MAIN=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libopenblas0-pthread libdnnl-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libssl-dev libabsl-dev
  libsentencepiece-dev sentencepiece nlohmann-json3-dev libsqlite3-dev libcli11-dev
  libcpp-httplib-dev gnuplot-nox
)
# The tests: GoogleTest, the Python module's build and pytest (tests/python), and PostgreSQL
# (libpq for the coordinator's PostgreSQL store, the server for its tests; util-linux has the
# setpriv that runs the server unprivileged when the tests run as root), and HAProxy (the
# front door of the multi-host process tests and of `fedlora cluster`).
TEST=(libgtest-dev libgmock-dev googletest
      pybind11-dev python3-dev python3-numpy python3-pytest python3-matplotlib
      libpq-dev postgresql-15 util-linux haproxy)
BENCH=(libbenchmark-dev python3-torch)

profile=all print=0
for arg in "$@"; do
  case "$arg" in
    main|test|bench|all) profile=$arg ;;
    --print) print=1 ;;
    *) echo "setup.sh: unknown argument '$arg' (usage: setup.sh [main|test|bench|all] [--print])" >&2
       exit 2 ;;
  esac
done
case "$profile" in
  main) PKGS=("${MAIN[@]}") ;;
  test) PKGS=("${MAIN[@]}" "${TEST[@]}") ;;
  bench) PKGS=("${MAIN[@]}" "${BENCH[@]}") ;;
  all) PKGS=("${MAIN[@]}" "${TEST[@]}" "${BENCH[@]}") ;;
esac
if ((print)); then
  printf '%s\n' "${PKGS[@]}"
  exit 0
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# libtorch falls back to reference BLAS (~60x slower matmul) unless OpenBLAS
# provides libblas.so.3; make sure the pthread OpenBLAS is the selected alternative.
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
for alt in libblas.so.3 liblapack.so.3; do
  cand=$(update-alternatives --list "$alt-$arch" 2>/dev/null | grep openblas-pthread | head -1 || true)
  if [[ -n "$cand" ]]; then
    ${SUDO:-} update-alternatives --set "$alt-$arch" "$cand" >/dev/null || true
  fi
done
echo "setup ($profile): all packages present"
