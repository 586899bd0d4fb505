// LlamaConfig: the architecture of a Llama-family causal decoder, as Hugging Face's
// `LlamaConfig` / config.json defines it. No torch dependency.
#ifndef FEDLORA_MODEL_CONFIG_H_
#define FEDLORA_MODEL_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace fedlora::model {

// The largest max_position_embeddings accepted: the model precomputes RoPE tables of
// max_position_embeddings x head_dim floats when it is built.
constexpr int64_t kMaxPositionEmbeddings = int64_t{1} << 24;

struct LlamaConfig {
  int64_t vocab_size = 8000;
  int64_t hidden_size = 512;
  int64_t intermediate_size = 1376;
  int64_t num_hidden_layers = 8;
  int64_t num_attention_heads = 8;
  int64_t num_key_value_heads = 8;
  int64_t head_dim = 64;  // hidden_size / heads unless config.json gives head_dim
  int64_t max_position_embeddings = 256;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  int64_t bos_token_id = 1;
  int64_t eos_token_id = 2;
  int64_t pad_token_id = -1;  // -1: none

  // Parameters in the model (embeddings, layers, final norm, untied head).
  int64_t NumParameters() const;
};

// Parses a config.json object. INVALID_ARGUMENT, naming `source` and the key, for a missing
// or ill-typed required key, non-positive sizes, heads that do not divide, an unsupported
// `model_type`/`hidden_act`, attention or MLP biases, or a `rope_scaling` / rope_type other
// than "default" (refused rather than silently ignored). Values that would only fail later
// inside torch are refused here too, each message giving the key, the value, the allowed
// range and a hint: `hidden_size` not a multiple of `num_attention_heads` (unless `head_dim`
// is given), an odd `head_dim`, `max_position_embeddings` outside 1..kMaxPositionEmbeddings,
// a negative `rms_norm_eps`, a non-positive `rope_theta`, and `bos_token_id`, every
// `eos_token_id` entry or `pad_token_id` (negative = none) outside 0..vocab_size-1.
// `rope_theta` is read top-level or from `rope_parameters.rope_theta`.
absl::StatusOr<LlamaConfig> ParseLlamaConfig(const nlohmann::json& j, const std::string& source);

// Reads and parses `path` (a config.json). NOT_FOUND if missing.
absl::StatusOr<LlamaConfig> LoadLlamaConfig(const std::string& path);

// The config.json Hugging Face transformers expects for `LlamaForCausalLM`.
nlohmann::json LlamaConfigToJson(const LlamaConfig& config);

}  // namespace fedlora::model

#endif  // FEDLORA_MODEL_CONFIG_H_
