// Internal: the rotary-layout permutation llama.cpp's converter applies to Llama's q/k rows,
// shared by the LoRA GGUF export (export_gguf.cc) and the full-model one (export_gguf_model.cc).
#ifndef FEDLORA_ADAPTERS_GGUF_LLAMA_H_
#define FEDLORA_ADAPTERS_GGUF_LLAMA_H_

#include <torch/types.h>

#include "fedlora/model/config.h"
#include "fedlora/model/llama.h"

namespace fedlora::adapters::internal {

// Heads whose rotary layout the converter permutes: q over all heads, k over KV heads; 0 for
// the other projections (not permuted).
inline int64_t PermuteHeads(const model::LlamaConfig& c, model::Proj p) {
  if (p == model::Proj::kQ) return c.num_attention_heads;
  if (p == model::Proj::kK) return c.num_key_value_heads;
  return 0;
}

// Rows of w [out, cols] per head from HF's [2, d/2] (rotate-half) order to ggml's [d/2, 2]
// (interleaved) order, or back with `inverse`: row h*d + 2j + s <- row h*d + s*d/2 + j.
inline torch::Tensor PermuteRows(const torch::Tensor& w, int64_t heads, bool inverse) {
  const int64_t out = w.size(0), cols = w.size(1), half = out / heads / 2;
  torch::Tensor v =
      inverse ? w.reshape({heads, half, 2, cols}) : w.reshape({heads, 2, half, cols});
  return v.transpose(1, 2).reshape({out, cols}).contiguous();
}

}  // namespace fedlora::adapters::internal

#endif  // FEDLORA_ADAPTERS_GGUF_LLAMA_H_
