// LoRA adapters as GGUF files for llama.cpp (`llama-cli -m base.gguf --lora adapter.gguf`),
// laid out as llama.cpp's convert_lora_to_gguf.py writes them, and read back.
//
// What is written (container layout: gguf.h):
//   metadata, in this order: general.architecture = "llama", general.type = "adapter",
//   adapter.type = "lora", general.name, [general.alignment when not 32],
//   adapter.lora.alpha (FLOAT32), general.quantization_version = 2 (UINT32), then any
//   GgufOptions::extra_strings.
//   tensors, per layer in increasing order, per projection in Proj order:
//   "blk.N.<t>.weight.lora_a" then "...lora_b", with <t> = attn_q, attn_k, attn_v, attn_output,
//   ffn_gate, ffn_up, ffn_down for q_proj ... down_proj. lora_a is A [r, in] (GGUF ne
//   [in, r]); lora_b is B [out, r] (ne [r, out]). For attn_q / attn_k the rows of B are
//   permuted as the converter permutes Llama's q/k weights (HF rotate-half RoPE layout to
//   ggml's interleaved one, per head: row h*d + 2j + s <- row h*d + s*d/2 + j, d = head_dim,
//   using num_attention_heads for q and num_key_value_heads for k).
//   llama.cpp applies scale = alpha / r; alpha is written as config.alpha, or
//   alpha * sqrt(r) for rsLoRA so that alpha / r is still the adapter's scaling.
#ifndef FEDLORA_ADAPTERS_EXPORT_GGUF_H_
#define FEDLORA_ADAPTERS_EXPORT_GGUF_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedlora/adapters/gguf.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/model/config.h"
#include "fedlora/model/llama.h"

namespace fedlora::adapters {

struct GgufOptions {
  GgmlType type = GgmlType::kF32;  // kF32 (the converter's default) or kF16 (--outtype f16)
  std::string name = "fedlora LoRA adapter";   // general.name; must not be empty
  uint32_t alignment = kGgufDefaultAlignment;  // a power of two; != 32 adds general.alignment
  // Extra STRING metadata appended after the standard keys (e.g. a release id). Keys must not
  // repeat the standard ones.
  std::vector<std::pair<std::string, std::string>> extra_strings;
};

// "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down".
const char* GgufProjName(model::Proj p);
// "blk.3.attn_q.weight" (the base tensor the pair adapts).
std::string GgufBaseTensorName(int layer, model::Proj p);

// The GGUF form of `adapter` for a base of architecture `base_config` (nothing written).
// INVALID_ARGUMENT naming the tensor (PEFT name, both shapes, "(hint: wrong base model?)")
// when a slot's layer is past the base's layers or A/B do not have the base's shapes; and for
// options with type other than F32/F16, an empty name, a bad alignment or a colliding key.
absl::StatusOr<GgufFile> AdapterToGguf(const LoraAdapter& adapter,
                                       const model::LlamaConfig& base_config,
                                       const GgufOptions& options = {});

// AdapterToGguf, then written atomically to `path`. Errors of AdapterToGguf, or the file
// system's (path named).
absl::Status ExportGguf(const LoraAdapter& adapter, const model::LlamaConfig& base_config,
                        const std::string& path, const GgufOptions& options = {});

// The inverse: an adapter from a GGUF LoRA file (as written above or by convert_lora_to_gguf
// for a Llama base), with q/k rows un-permuted, values converted to float32, rank from the
// tensors, alpha from adapter.lora.alpha (use_rslora false: llama.cpp's alpha / r). Layers:
// all when every layer of the base is present, else the list found. INVALID_ARGUMENT naming the
// key or tensor for: general.type not "adapter", adapter.type not "lora", architecture not
// "llama", a missing or non-FLOAT32 alpha, a tensor name that is not
// blk.N.<t>.weight.lora_{a,b} for the seven projections, an unpaired tensor, ranks that
// differ, shapes that do not fit `base_config`, or a (layer, projection) grid with holes
// (every targeted projection must be on every adapted layer).
absl::StatusOr<LoraAdapter> AdapterFromGguf(const GgufFile& file,
                                            const model::LlamaConfig& base_config);

}  // namespace fedlora::adapters

#endif  // FEDLORA_ADAPTERS_EXPORT_GGUF_H_
