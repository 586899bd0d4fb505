#include "fedlora/model/config.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"

namespace fedlora::model {
namespace {

absl::Status Bad(const std::string& source, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", what));
}

// "<source>: <key> = <value> is out of range; allowed: <allowed> (hint: <hint>)".
absl::Status OutOfRange(const std::string& source, const std::string& key, const std::string& value,
                        const std::string& allowed, const std::string& hint) {
  return Bad(source, absl::StrCat(key, " = ", value, " is out of range; allowed: ", allowed,
                                  " (hint: ", hint, ")"));
}

// A token id that indexes the embedding: 0 <= id < vocab_size.
absl::Status CheckTokenId(const std::string& source, const std::string& key, int64_t id,
                          int64_t vocab_size) {
  if (id >= 0 && id < vocab_size) return absl::OkStatus();
  return OutOfRange(source, key, absl::StrCat(id),
                    absl::StrCat("0..", vocab_size - 1, " (ids index the vocab_size ", vocab_size,
                                 " embedding rows)"),
                    "use the config.json that belongs to these weights, or set it to the "
                    "tokenizer's special token: usually <s> = 1, </s> = 2");
}

absl::StatusOr<int64_t> GetInt(const nlohmann::json& j, const std::string& key,
                               const std::string& source, bool required, int64_t fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) {
      return Bad(source, absl::StrCat("missing required key '", key,
                                      "' (hint: is this a Llama config.json?)"));
    }
    return fallback;
  }
  if (!it->is_number_integer()) {
    return Bad(source, absl::StrCat("key '", key, "' must be an integer, got ", it->dump()));
  }
  return it->get<int64_t>();
}

absl::StatusOr<double> GetDouble(const nlohmann::json& j, const std::string& key,
                                 const std::string& source, double fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number()) {
    return Bad(source, absl::StrCat("key '", key, "' must be a number, got ", it->dump()));
  }
  return it->get<double>();
}

absl::Status CheckRope(const nlohmann::json& rope, const std::string& key,
                       const std::string& source) {
  if (rope.is_null()) return absl::OkStatus();
  if (!rope.is_object()) return Bad(source, absl::StrCat("'", key, "' must be an object"));
  std::string type = "default";
  if (rope.contains("rope_type") && rope["rope_type"].is_string()) {
    type = rope["rope_type"].get<std::string>();
  } else if (rope.contains("type") && rope["type"].is_string()) {
    type = rope["type"].get<std::string>();
  }
  if (type != "default") {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": ", key, " of type '", type,
        "' is not implemented (only default RoPE is; hint: use a checkpoint without rope "
        "scaling, or remove it knowingly: results would differ from Hugging Face)"));
  }
  return absl::OkStatus();
}

}  // namespace

int64_t LlamaConfig::NumParameters() const {
  int64_t d = hidden_size;
  int64_t attn = d * num_attention_heads * head_dim * 2 + d * num_key_value_heads * head_dim * 2;
  int64_t mlp = 3 * d * intermediate_size;
  int64_t per_layer = attn + mlp + 2 * d;
  int64_t total = vocab_size * d + num_hidden_layers * per_layer + d;
  if (!tie_word_embeddings) total += vocab_size * d;
  return total;
}

absl::StatusOr<LlamaConfig> ParseLlamaConfig(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) return Bad(source, "config must be a JSON object");
  if (j.contains("model_type") && j["model_type"].is_string()) {
    std::string mt = j["model_type"];
    if (mt != "llama") {
      return Bad(source, absl::StrCat("model_type '", mt,
                                      "' is not a Llama decoder (hint: expected \"llama\")"));
    }
  }
  if (j.contains("hidden_act") && j["hidden_act"].is_string() && j["hidden_act"] != "silu") {
    return Bad(source, absl::StrCat("hidden_act '", j["hidden_act"].get<std::string>(),
                                    "' is not supported (only silu / SwiGLU)"));
  }
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    if (j.contains(key) && j[key].is_boolean() && j[key].get<bool>()) {
      return Bad(source, absl::StrCat("'", key, "': true is not supported (Llama has no biases)"));
    }
  }
  LlamaConfig c;
  FEDLORA_ASSIGN_OR_RETURN(c.vocab_size, GetInt(j, "vocab_size", source, true, 0));
  FEDLORA_ASSIGN_OR_RETURN(c.hidden_size, GetInt(j, "hidden_size", source, true, 0));
  FEDLORA_ASSIGN_OR_RETURN(c.intermediate_size, GetInt(j, "intermediate_size", source, true, 0));
  FEDLORA_ASSIGN_OR_RETURN(c.num_hidden_layers, GetInt(j, "num_hidden_layers", source, true, 0));
  FEDLORA_ASSIGN_OR_RETURN(c.num_attention_heads,
                           GetInt(j, "num_attention_heads", source, true, 0));
  FEDLORA_ASSIGN_OR_RETURN(c.num_key_value_heads,
                           GetInt(j, "num_key_value_heads", source, false, c.num_attention_heads));
  for (auto [name, v] : {std::pair<const char*, int64_t>{"vocab_size", c.vocab_size},
                         {"hidden_size", c.hidden_size},
                         {"intermediate_size", c.intermediate_size},
                         {"num_hidden_layers", c.num_hidden_layers},
                         {"num_attention_heads", c.num_attention_heads},
                         {"num_key_value_heads", c.num_key_value_heads}}) {
    if (v <= 0) {
      return OutOfRange(source, name, absl::StrCat(v), ">= 1",
                        "sizes must be positive: the file is damaged or not a Llama config.json");
    }
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return OutOfRange(source, "num_key_value_heads", absl::StrCat(c.num_key_value_heads),
                      absl::StrCat("a divisor of num_attention_heads ", c.num_attention_heads),
                      "grouped-query attention shares each key/value head among an equal group "
                      "of query heads: num_attention_heads must be a multiple of it");
  }
  const bool has_head_dim = j.contains("head_dim") && !j["head_dim"].is_null();
  if (!has_head_dim && c.hidden_size % c.num_attention_heads != 0) {
    return OutOfRange(
        source, "hidden_size", absl::StrCat(c.hidden_size),
        absl::StrCat("a multiple of num_attention_heads ", c.num_attention_heads,
                     " when head_dim is not given"),
        "fix hidden_size or num_attention_heads, or give head_dim if the attention width "
        "really differs from hidden_size");
  }
  int64_t default_hd = c.hidden_size / c.num_attention_heads;
  FEDLORA_ASSIGN_OR_RETURN(c.head_dim, GetInt(j, "head_dim", source, false, default_hd));
  if (c.head_dim <= 0 || c.head_dim % 2 != 0) {
    return OutOfRange(source, "head_dim", absl::StrCat(c.head_dim), "a positive even number",
                      "rotary embeddings rotate pairs of dimensions; check head_dim, or "
                      "hidden_size / num_attention_heads when head_dim is not given");
  }
  FEDLORA_ASSIGN_OR_RETURN(c.max_position_embeddings,
                           GetInt(j, "max_position_embeddings", source, false, 2048));
  if (c.max_position_embeddings < 1 || c.max_position_embeddings > kMaxPositionEmbeddings) {
    return OutOfRange(source, "max_position_embeddings", absl::StrCat(c.max_position_embeddings),
                      absl::StrCat("1..", kMaxPositionEmbeddings),
                      "set it to the context length the model was trained with, e.g. 2048");
  }
  FEDLORA_ASSIGN_OR_RETURN(c.rms_norm_eps, GetDouble(j, "rms_norm_eps", source, 1e-6));
  if (!(c.rms_norm_eps >= 0) || !std::isfinite(c.rms_norm_eps)) {
    return OutOfRange(source, "rms_norm_eps", absl::StrCat(c.rms_norm_eps), ">= 0 and finite",
                      "Llama models use 1e-5 or 1e-6");
  }
  double theta = 10000.0;
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    FEDLORA_RETURN_IF_ERROR(CheckRope(j["rope_parameters"], "rope_parameters", source));
    FEDLORA_ASSIGN_OR_RETURN(theta, GetDouble(j["rope_parameters"], "rope_theta", source, theta));
  }
  FEDLORA_ASSIGN_OR_RETURN(c.rope_theta, GetDouble(j, "rope_theta", source, theta));
  if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta)) {
    return OutOfRange(source, "rope_theta", absl::StrCat(c.rope_theta), "> 0 and finite",
                      "the RoPE base is usually 10000 for Llama 2, 500000 for Llama 3");
  }
  if (j.contains("rope_scaling")) {
    FEDLORA_RETURN_IF_ERROR(CheckRope(j["rope_scaling"], "rope_scaling", source));
  }
  if (j.contains("tie_word_embeddings") && j["tie_word_embeddings"].is_boolean()) {
    c.tie_word_embeddings = j["tie_word_embeddings"].get<bool>();
  }
  FEDLORA_ASSIGN_OR_RETURN(c.bos_token_id, GetInt(j, "bos_token_id", source, false, 1));
  FEDLORA_RETURN_IF_ERROR(CheckTokenId(source, "bos_token_id", c.bos_token_id, c.vocab_size));
  if (j.contains("eos_token_id") && j["eos_token_id"].is_array() && !j["eos_token_id"].empty()) {
    // Several end ids (Llama 3.x): generation stops at the first; all must be token ids.
    const auto& list = j["eos_token_id"];
    for (size_t i = 0; i < list.size(); ++i) {
      if (!list[i].is_number_integer()) {
        return Bad(source,
                   absl::StrCat("eos_token_id entries must be integers, got ", list[i].dump()));
      }
      FEDLORA_RETURN_IF_ERROR(CheckTokenId(source, absl::StrCat("eos_token_id[", i, "]"),
                                           list[i].get<int64_t>(), c.vocab_size));
    }
    c.eos_token_id = list[0].get<int64_t>();
  } else {
    FEDLORA_ASSIGN_OR_RETURN(c.eos_token_id, GetInt(j, "eos_token_id", source, false, 2));
    FEDLORA_RETURN_IF_ERROR(CheckTokenId(source, "eos_token_id", c.eos_token_id, c.vocab_size));
  }
  FEDLORA_ASSIGN_OR_RETURN(c.pad_token_id, GetInt(j, "pad_token_id", source, false, -1));
  if (c.pad_token_id < 0) {
    c.pad_token_id = -1;  // some configs write -1 for "no padding token"
  } else {
    FEDLORA_RETURN_IF_ERROR(CheckTokenId(source, "pad_token_id", c.pad_token_id, c.vocab_size));
  }
  return c;
}

absl::StatusOr<LlamaConfig> LoadLlamaConfig(const std::string& path) {
  FEDLORA_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON"));
  }
  return ParseLlamaConfig(j, path);
}

nlohmann::json LlamaConfigToJson(const LlamaConfig& c) {
  nlohmann::json j;
  j["architectures"] = {"LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  j["hidden_act"] = "silu";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["bos_token_id"] = c.bos_token_id;
  j["eos_token_id"] = c.eos_token_id;
  if (c.pad_token_id >= 0) j["pad_token_id"] = c.pad_token_id;
  j["torch_dtype"] = "float32";
  j["initializer_range"] = 0.02;
  j["use_cache"] = true;
  return j;
}

}  // namespace fedlora::model
