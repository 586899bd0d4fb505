#!/usr/bin/env bash
# GGUF export checked by llama.cpp itself (node-llama-cpp 3.21.1, CPU): the fixture base
# exported as f32 / f16 / q8_0, the base plus the release's LoRA GGUF, the adapter merged in,
# and NF4 / int8 compressed bases (dequantized, requantized) are loaded by llama.cpp, which
# evaluates fedlora's token ids; its next-token log-probabilities (fedlora's top 10 tokens at
# every position of every prompt) must agree with `fedlora logprobs` within each tolerance,
# and its tokenization of each prompt must equal fedlora's.
# Usage: llamacpp_check.sh FEDLORA_BINARY SHARED_DIR WORK_DIR
# Prints one JSON line per check and writes WORK_DIR/summary.json.
set -euo pipefail
FEDLORA=$1
SHARED=$2
WORK=$3
HERE=$(cd "$(dirname "$0")" && pwd)
NLC=${FEDLORA_NODE_LLAMA_CPP:-$HOME/.cache/fedlora/node-llama-cpp}
if ! command -v node >/dev/null || [[ ! -f "$NLC/node_modules/node-llama-cpp/package.json" ]]; then
  echo "FAIL: node-llama-cpp is not installed in $NLC: run scripts/setup_llamacpp.sh" \
       "(test profile of setup; needs the npm registry once)" >&2
  exit 1
fi
FIX=$SHARED/fixtures/hf-tiny-llama
BASE=$FIX/base
ADAPTER=$FIX/adapter
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"

PROMPTS=("Each licensee is addressed as you." "The resulting work is called a modified version"
         "copyright permission, other than the making of an exact copy" "hello world")
logprobs() { "$FEDLORA" logprobs --json --top 10 "$@" "${PROMPTS[@]}"; }
check() {  # label model.gguf ref.json max mean [lora.gguf|-] [kv cache type]
  local extra=()
  [[ $# -ge 6 && "$6" != - ]] && extra+=(--lora "$6")
  [[ $# -ge 7 ]] && extra+=(--kv "$7")
  node "$HERE/llamacpp_logprobs.mjs" --nlc "$NLC" --label "$1" --model "$2" --ref "$3" \
       --max-abs "$4" --mean-abs "$5" "${extra[@]}" | tee -a results.jsonl
}

logprobs --model "$BASE" >ref_base.json
logprobs --model "$BASE" --adapter "$ADAPTER" >ref_lora.json

# Tolerances (max / mean |d logprob| in nats), about 3x what was measured (docs/releases.md).
for t in f32 f16 q8_0; do
  "$FEDLORA" export --model "$BASE" --format gguf --type $t --out base.$t.gguf --json
done
check base.f32 base.f32.gguf ref_base.json 1e-4 2e-5
check base.f16 base.f16.gguf ref_base.json 2e-2 4e-3
check base.q8_0 base.q8_0.gguf ref_base.json 6e-1 1e-1
# llama.cpp's default F16 K/V cache (what llama-cli / ollama run), for the record.
check base.f32.kv-f16 base.f32.gguf ref_base.json 5e-2 1e-2 - F16

# The release's LoRA GGUF on the exported base (what an ollama Modelfile's ADAPTER does).
"$FEDLORA" keys new --out rel.key >/dev/null
"$FEDLORA" release create --adapter "$ADAPTER" --base "$BASE" --version 1 --key rel.key \
    --rounds 1 --epsilon 1 --delta 1e-6 --out rel >/dev/null
"$FEDLORA" release export rel --format gguf --base "$BASE" --trusted rel.key.pub \
    --out lora.gguf >/dev/null
check base.f32+lora base.f32.gguf ref_lora.json 1e-4 2e-5 lora.gguf
check base.q8_0+lora base.q8_0.gguf ref_lora.json 6e-1 1e-1 lora.gguf
# A release folder is not merged unverified: --adapter refuses it and names the way.
if "$FEDLORA" export --model "$BASE" --adapter rel --out refused.gguf 2>refused.txt; then
  echo "FAIL: export merged a release folder without verifying it" >&2
  exit 1
fi
grep -q "is a release folder" refused.txt && [[ ! -e refused.gguf ]]
# Merged into the weights.
"$FEDLORA" export --model "$BASE" --adapter "$ADAPTER" --type f32 --out merged.f32.gguf >/dev/null
"$FEDLORA" export --model "$BASE" --adapter "$ADAPTER" --type q8_0 --out merged.q8_0.gguf \
    >/dev/null
check merged.f32 merged.f32.gguf ref_lora.json 1e-4 2e-5
check merged.q8_0 merged.q8_0.gguf ref_lora.json 6e-1 1e-1

# Compressed bases (NF4, int8): dequantized then written f32 (exact up to float rounding) or
# requantized to q8_0, against fedlora running the compressed base with float activations
# (FEDLORA_INT8_COMPUTE=off: its default int8 activation path rounds too); and, for the record
# (loose bounds), against the float base: what compressing and requantizing cost in all.
for method in nf4 int8; do
  "$FEDLORA" compress --model "$BASE" --out base-$method --method $method >/dev/null
  FEDLORA_INT8_COMPUTE=off logprobs --model base-$method >ref_$method.json
  "$FEDLORA" export --model base-$method --type f32 --out $method.f32.gguf >/dev/null
  "$FEDLORA" export --model base-$method --type q8_0 --out $method.q8_0.gguf >/dev/null
  check $method.f32 $method.f32.gguf ref_$method.json 1e-4 2e-5
  check $method.q8_0 $method.q8_0.gguf ref_$method.json 6e-1 1e-1
  check $method.f32-vs-float-base $method.f32.gguf ref_base.json 5 1
  check $method.q8_0-vs-float-base $method.q8_0.gguf ref_base.json 5 1
done

node -e 'const fs=require("fs");const r=fs.readFileSync("results.jsonl","utf8").trim()
  .split("\n").map(JSON.parse);fs.writeFileSync("summary.json",JSON.stringify(r,null,1))'
echo "PASS: llama.cpp agrees with fedlora on $(wc -l <results.jsonl) exported models"
