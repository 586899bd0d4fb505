#!/usr/bin/env bash
# Installs every Debian 12 package fedlora needs. Idempotent; run as root.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libopenblas0-pthread
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libssl-dev libabsl-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libsentencepiece-dev nlohmann-json3-dev libsqlite3-dev libcli11-dev
  sentencepiece gnuplot-nox python3-torch libcpp-httplib-dev libdnnl-dev
  pybind11-dev python3-dev python3-numpy python3-pytest python3-matplotlib
)
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
echo "setup: all packages present"
