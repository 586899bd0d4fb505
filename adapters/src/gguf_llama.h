// Internal: what the LoRA GGUF export (export_gguf.cc) and the full-model one
// (export_gguf_model.cc) share: the rotary-layout permutation llama.cpp's converter applies to
// Llama's q/k rows, and the conversion of a float tensor to a GGUF tensor.
#ifndef FEDLORA_ADAPTERS_GGUF_LLAMA_H_
#define FEDLORA_ADAPTERS_GGUF_LLAMA_H_

#include <torch/types.h>

#include <cstring>
#include <string>

#include "fedlora/adapters/export_gguf_model.h"
#include "fedlora/adapters/gguf.h"
#include "fedlora/io/safetensors.h"
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

// `t` (any shape; GGUF lists the contiguous dimension first) as GGUF tensor `name` in `type`;
// Q8_0 falls back to F16 for rows that are not whole blocks.
inline GgufTensor MakeTensor(const std::string& name, const torch::Tensor& t, GgmlType type) {
  GgufTensor g;
  g.name = name;
  torch::Tensor c = t.detach().to(torch::kFloat).contiguous();
  for (int64_t d = c.dim() - 1; d >= 0; --d) g.ne.push_back(c.size(d));
  if (type == GgmlType::kQ8_0 && g.ne[0] % kQ8_0Block != 0) type = GgmlType::kF16;
  g.type = static_cast<uint32_t>(type);
  const auto n = static_cast<size_t>(c.numel());
  const float* src = c.data_ptr<float>();
  if (type == GgmlType::kF32) {
    g.data.resize(n * 4);
    std::memcpy(g.data.data(), src, n * 4);
  } else if (type == GgmlType::kF16) {
    g.data.resize(n * 2);
    for (size_t i = 0; i < n; ++i) {
      const uint16_t h = io::FloatToHalf(src[i]);
      std::memcpy(g.data.data() + 2 * i, &h, 2);
    }
  } else {
    g.data = QuantizeQ8_0(src, n);
  }
  return g;
}

}  // namespace fedlora::adapters::internal

#endif  // FEDLORA_ADAPTERS_GGUF_LLAMA_H_
