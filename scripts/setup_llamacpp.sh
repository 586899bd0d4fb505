#!/usr/bin/env bash
# Test-only setup: llama.cpp through node-llama-cpp, which the GGUF export test (ctest
# GgufLlamaCpp.*, tests/gguf) loads exported models with. Installs nodejs/npm from Debian when
# missing, then node-llama-cpp (pinned) into $FEDLORA_NODE_LLAMA_CPP (default
# $HOME/.cache/fedlora/node-llama-cpp), keeping only the linux-x64 CPU binaries. Idempotent.
set -euo pipefail
VERSION=3.21.1
DIR=${FEDLORA_NODE_LLAMA_CPP:-$HOME/.cache/fedlora/node-llama-cpp}
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends nodejs npm
fi
installed=$(node -p "require('$DIR/node_modules/node-llama-cpp/package.json').version" 2>/dev/null || true)
if [[ "$installed" != "$VERSION" ]]; then
  mkdir -p "$DIR"
  [[ -f "$DIR/package.json" ]] || echo '{"name":"fedlora-llamacpp-check","private":true}' >"$DIR/package.json"
  # No postinstall download/build: the prebuilt binaries ship in @node-llama-cpp/<platform>.
  (cd "$DIR" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm i -E "node-llama-cpp@$VERSION" --no-audit --no-fund)
fi
# Only the CPU build for this machine is used (getLlama({gpu: false})): drop CUDA/Vulkan/ARM.
for d in "$DIR"/node_modules/@node-llama-cpp/*; do
  [[ -d "$d" && "$(basename "$d")" != linux-x64 ]] && rm -rf "$d"
done
test -d "$DIR/node_modules/@node-llama-cpp/linux-x64" || {
  echo "setup_llamacpp: @node-llama-cpp/linux-x64 is missing in $DIR" >&2
  exit 1
}
echo "setup_llamacpp: node-llama-cpp $VERSION in $DIR ($(du -sh "$DIR" | cut -f1))"
