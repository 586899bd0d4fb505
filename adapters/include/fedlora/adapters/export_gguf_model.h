// A whole Llama model (base weights, optionally with adapters merged in, and its sentencepiece
// tokenizer) as one GGUF file of llama.cpp's "llama" architecture, laid out as llama.cpp's
// convert_hf_to_gguf.py writes a LlamaForCausalLM checkpoint:
//
//   metadata: general.architecture = "llama", general.name, general.file_type (0 F32, 1 F16,
//     7 Q8_0), general.quantization_version = 2, llama.{context_length, embedding_length,
//     block_count, feed_forward_length, attention.head_count, attention.head_count_kv,
//     attention.key_length, attention.value_length, rope.dimension_count, rope.freq_base,
//     attention.layer_norm_rms_epsilon, vocab_size}, then the tokenizer: tokenizer.ggml.model
//     = "llama", .tokens / .scores / .token_type (the pieces, padded to vocab_size with
//     "[PADi]", score -10000, type UNUSED), .bos_token_id, .eos_token_id, .unknown_token_id,
//     [.padding_token_id], .add_bos_token = true, .add_eos_token = false, .add_space_prefix.
//   tensors: token_embd.weight, per layer blk.N.{attn_norm, attn_q, attn_k, attn_v,
//     attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}.weight, output_norm.weight, and
//     output.weight unless the head is tied to the embeddings. GGUF dims are the PyTorch
//     shape reversed ([out, in] -> ne [in, out]). attn_q / attn_k rows are permuted from HF's
//     rotate-half RoPE layout to ggml's interleaved one (gguf_llama.h), per head, with
//     num_attention_heads for q and num_key_value_heads for k.
//   types: norms always F32; 2-D tensors in the requested type. For Q8_0, a tensor whose row
//     length (ne[0]) is not a multiple of 32 is written F16 instead, as the converter does.
//
// A compressed base (int8, NF4, GPTQ, CALDERA...) is written from its dense weights
// (model::Linear::DenseWeight: dequantized, plus any merged correction), then requantized.
#ifndef FEDLORA_ADAPTERS_EXPORT_GGUF_MODEL_H_
#define FEDLORA_ADAPTERS_EXPORT_GGUF_MODEL_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedlora/adapters/gguf.h"
#include "fedlora/adapters/sp_vocab.h"
#include "fedlora/model/llama.h"

namespace fedlora::adapters {

struct GgufModelOptions {
  GgmlType type = GgmlType::kF32;  // kF32, kF16 or kQ8_0
  std::string name = "fedlora model";  // general.name; must not be empty
  // Extra STRING metadata appended after the standard keys (e.g. the merged adapters).
  std::vector<std::pair<std::string, std::string>> extra_strings;
};

// Parses "f32" | "f16" | "q8_0" (the converter's --outtype names). INVALID_ARGUMENT otherwise.
absl::StatusOr<GgmlType> ParseGgufModelType(const std::string& name);

// ggml's reference Q8_0 quantization of `n` floats (n a multiple of 32): per block of 32,
// d = max|x| / 127 (stored F16), q = round(x / d) (0 when d is 0). n / 32 * 34 bytes.
std::vector<uint8_t> QuantizeQ8_0(const float* x, size_t n);

// The GGUF form of `model` with tokenizer `vocab` (nothing written). INVALID_ARGUMENT for: a
// type other than F32/F16/Q8_0, an empty name, an extra key that repeats a standard one, a
// vocabulary with more pieces than the model's vocab_size, a sentencepiece model that is
// not BPE or unigram, or q/k rows that are not 2 x heads x (head_dim / 2).
absl::StatusOr<GgufFile> ModelToGguf(const model::LlamaModel& model,
                                     const SentencePieceVocab& vocab,
                                     const GgufModelOptions& options = {});

// ModelToGguf, then written atomically to `path` (errors name it).
absl::Status ExportModelGguf(const model::LlamaModel& model, const SentencePieceVocab& vocab,
                             const std::string& path, const GgufModelOptions& options = {});

}  // namespace fedlora::adapters

#endif  // FEDLORA_ADAPTERS_EXPORT_GGUF_MODEL_H_
