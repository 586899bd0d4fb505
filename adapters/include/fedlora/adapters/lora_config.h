// LoraConfig: the hyper-parameters of a LoRA adapter (which projections of which layers, rank,
// scaling, dropout, initialisation) and their Hugging Face PEFT `adapter_config.json` form.
#ifndef FEDLORA_ADAPTERS_LORA_CONFIG_H_
#define FEDLORA_ADAPTERS_LORA_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedlora/model/llama.h"
#include "nlohmann/json.hpp"

namespace fedlora::adapters {

struct LoraConfig {
  int rank = 8;             // r
  double alpha = 16;        // lora_alpha
  bool use_rslora = false;  // scaling alpha / sqrt(r) instead of alpha / r
  double dropout = 0.0;     // dropout on the LoRA input while training, in [0, 1)
  // Targeted projections. Any order on input; Create/LoadPeft keep them sorted in Proj order.
  std::vector<model::Proj> targets = {model::Proj::kQ, model::Proj::kV};
  // Layer indices that carry the adapter (PEFT's layers_to_transform); empty = all layers.
  std::vector<int> layers;
  // kPeft: A ~ kaiming-uniform(a = sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)), B = 0 (PEFT's
  // default). kGaussian: A ~ N(0, std = 1/r), B = 0 (PEFT's "gaussian"). kZero: A = B = 0; a
  // zero-valued holder (e.g. an accumulator); not trainable from scratch (all gradients vanish).
  enum class Init { kPeft, kGaussian, kZero } init = Init::kPeft;

  // alpha / rank, or alpha / sqrt(rank) with use_rslora.
  double Scaling() const;

  // OK, or INVALID_ARGUMENT naming the field: rank <= 0, non-finite or zero alpha, dropout
  // outside [0, 1), no targets, repeated targets or layers, negative layer indices.
  absl::Status Check() const;

  // An adapter_config.json that Hugging Face PEFT loads (peft_type "LORA", task_type
  // "CAUSAL_LM", base_model_name_or_path null, target_modules as a list of names).
  nlohmann::json ToPeftJson() const;

  // Parses an adapter_config.json object; `source` (a path) prefixes every error. Accepts
  // target_modules as a list (entries "q_proj" or "self_attn.q_proj", or the string
  // "all-linear") or a single string (matched as a regex against the bare projection name and
  // against "model.layers.0.<module>.<proj>"), layers_to_transform as null, an int or a list.
  // INVALID_ARGUMENT naming the key for: peft_type other than "LORA", missing/ill-typed r,
  // target modules we cannot carry (e.g. lm_head, embed_tokens), fan_in_fan_out, use_dora,
  // bias other than "none", lora_bias, non-empty rank_pattern/alpha_pattern,
  // modules_to_save, or a failing Check().
  static absl::StatusOr<LoraConfig> FromPeftJson(const nlohmann::json& j,
                                                 const std::string& source);
};

// True when both configs give the same tensors with the same meaning (rank, alpha, rslora,
// targets, layers); dropout and init are ignored.
bool ConfigsCompatible(const LoraConfig& a, const LoraConfig& b);

}  // namespace fedlora::adapters

#endif  // FEDLORA_ADAPTERS_LORA_CONFIG_H_
