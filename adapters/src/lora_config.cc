#include "fedlora/adapters/lora_config.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fedlora::adapters {
namespace {

using model::Proj;

absl::Status Bad(const std::string& source, const std::string& msg) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", msg));
}

// One entry of a target_modules list: "q_proj", "self_attn.q_proj" or a longer dotted suffix.
bool ParseTargetEntry(const std::string& entry, Proj* out) {
  const size_t dot = entry.rfind('.');
  const std::string last = dot == std::string::npos ? entry : entry.substr(dot + 1);
  if (!model::ParseProj(last, out)) return false;
  if (dot == std::string::npos) return true;
  const std::string prefix = entry.substr(0, dot);
  const std::string module = model::ProjModule(*out);
  return prefix == module ||
         (prefix.size() > module.size() &&
          prefix.compare(prefix.size() - module.size() - 1, std::string::npos, "." + module) == 0);
}

absl::StatusOr<std::vector<Proj>> ParseTargets(const nlohmann::json& t, const std::string& src) {
  std::vector<Proj> out;
  auto all = [&] {
    for (int i = 0; i < model::kNumProj; ++i) out.push_back(static_cast<Proj>(i));
  };
  if (t.is_string()) {
    const std::string s = t.get<std::string>();
    if (s == "all-linear") {
      all();
      return out;
    }
    std::regex re;
    try {
      re = std::regex(s);
    } catch (const std::regex_error& e) {
      return Bad(src, absl::StrCat("target_modules regex '", s, "' is invalid: ", e.what()));
    }
    for (int i = 0; i < model::kNumProj; ++i) {
      Proj p = static_cast<Proj>(i);
      const std::string path =
          absl::StrCat("model.layers.0.", model::ProjModule(p), ".", model::ProjName(p));
      if (std::regex_match(model::ProjName(p), re) || std::regex_match(path, re)) {
        out.push_back(p);
      }
    }
    if (out.empty()) {
      return Bad(src, absl::StrCat("target_modules regex '", s,
                                   "' matches none of q_proj k_proj v_proj o_proj gate_proj "
                                   "up_proj down_proj (hint: list the modules instead)"));
    }
    return out;
  }
  if (!t.is_array() || t.empty()) {
    return Bad(src, "target_modules must be a non-empty list of module names or a string");
  }
  for (const auto& e : t) {
    if (!e.is_string()) return Bad(src, "target_modules entries must be strings");
    const std::string s = e.get<std::string>();
    if (s == "all-linear") {
      all();
      continue;
    }
    Proj p;
    if (!ParseTargetEntry(s, &p)) {
      return Bad(src, absl::StrCat("target module '", s,
                                   "' is not supported; fedlora adapts q_proj k_proj v_proj "
                                   "o_proj gate_proj up_proj down_proj (hint: retrain without "
                                   "adapters on embeddings or lm_head)"));
    }
    out.push_back(p);
  }
  return out;
}

}  // namespace

double LoraConfig::Scaling() const {
  return use_rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / rank;
}

absl::Status LoraConfig::Check() const {
  if (rank <= 0)
    return absl::InvalidArgumentError(absl::StrCat("LoRA rank ", rank, " must be > 0"));
  if (!std::isfinite(alpha) || alpha == 0) {
    return absl::InvalidArgumentError(absl::StrCat("LoRA alpha ", alpha, " must be finite, != 0"));
  }
  if (!(dropout >= 0 && dropout < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("LoRA dropout ", dropout, " not in [0, 1)"));
  }
  if (targets.empty()) return absl::InvalidArgumentError("LoRA config has no target modules");
  std::set<Proj> t(targets.begin(), targets.end());
  if (t.size() != targets.size()) {
    return absl::InvalidArgumentError("LoRA config lists a target module twice");
  }
  std::set<int> l(layers.begin(), layers.end());
  if (l.size() != layers.size()) {
    return absl::InvalidArgumentError("LoRA config lists a layer twice");
  }
  if (!layers.empty() && *l.begin() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("LoRA layer index ", *l.begin(), " < 0"));
  }
  return absl::OkStatus();
}

nlohmann::json LoraConfig::ToPeftJson() const {
  std::vector<Proj> sorted = targets;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::string> names;
  for (Proj p : sorted) names.push_back(model::ProjName(p));
  std::vector<int> sorted_layers = layers;
  std::sort(sorted_layers.begin(), sorted_layers.end());
  nlohmann::json j;
  j["peft_type"] = "LORA";
  j["task_type"] = "CAUSAL_LM";
  j["base_model_name_or_path"] = nullptr;
  j["revision"] = nullptr;
  j["inference_mode"] = true;
  j["r"] = rank;
  if (alpha == std::floor(alpha) && std::abs(alpha) < 1e9) {
    j["lora_alpha"] = static_cast<int64_t>(alpha);  // as PEFT writes it
  } else {
    j["lora_alpha"] = alpha;
  }
  j["lora_dropout"] = dropout;
  j["use_rslora"] = use_rslora;
  j["target_modules"] = names;
  j["layers_to_transform"] =
      sorted_layers.empty() ? nlohmann::json(nullptr) : nlohmann::json(sorted_layers);
  j["layers_pattern"] = nullptr;
  j["fan_in_fan_out"] = false;
  j["bias"] = "none";
  j["use_dora"] = false;
  j["modules_to_save"] = nullptr;
  j["rank_pattern"] = nlohmann::json::object();
  j["alpha_pattern"] = nlohmann::json::object();
  j["init_lora_weights"] =
      init == Init::kGaussian ? nlohmann::json("gaussian") : nlohmann::json(true);
  return j;
}

absl::StatusOr<LoraConfig> LoraConfig::FromPeftJson(const nlohmann::json& j,
                                                    const std::string& src) {
  if (!j.is_object()) return Bad(src, "expected a JSON object");
  auto present = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  auto truthy = [&](const char* k) { return present(k) && j[k].is_boolean() && j[k].get<bool>(); };
  if (present("peft_type") && j["peft_type"] != "LORA") {
    return Bad(src, absl::StrCat("peft_type is ", j["peft_type"].dump(),
                                 "; only \"LORA\" adapters are supported"));
  }
  LoraConfig c;
  if (!present("r") || !j["r"].is_number_integer()) {
    return Bad(src, "key \"r\" (the LoRA rank) is missing or not an integer");
  }
  c.rank = j["r"].get<int>();
  c.alpha = 8;  // PEFT's default lora_alpha
  if (present("lora_alpha")) {
    if (!j["lora_alpha"].is_number()) return Bad(src, "key \"lora_alpha\" is not a number");
    c.alpha = j["lora_alpha"].get<double>();
  }
  c.dropout = 0;
  if (present("lora_dropout")) {
    if (!j["lora_dropout"].is_number()) return Bad(src, "key \"lora_dropout\" is not a number");
    c.dropout = j["lora_dropout"].get<double>();
  }
  if (present("use_rslora")) {
    if (!j["use_rslora"].is_boolean()) return Bad(src, "key \"use_rslora\" is not a boolean");
    c.use_rslora = j["use_rslora"].get<bool>();
  }
  if (!present("target_modules")) return Bad(src, "key \"target_modules\" is missing");
  auto targets = ParseTargets(j["target_modules"], src);
  if (!targets.ok()) return targets.status();
  std::set<Proj> unique(targets->begin(), targets->end());
  c.targets.assign(unique.begin(), unique.end());
  if (present("layers_to_transform")) {
    const auto& l = j["layers_to_transform"];
    if (l.is_number_integer()) {
      c.layers = {l.get<int>()};
    } else if (l.is_array() && std::all_of(l.begin(), l.end(),
                                           [](const auto& e) { return e.is_number_integer(); })) {
      c.layers = l.get<std::vector<int>>();
      std::sort(c.layers.begin(), c.layers.end());
    } else {
      return Bad(src, "key \"layers_to_transform\" must be null, an integer or a list of them");
    }
  }
  if (truthy("fan_in_fan_out")) {
    return Bad(src, "fan_in_fan_out = true is not supported (Llama linears are [out, in])");
  }
  if (truthy("use_dora")) return Bad(src, "use_dora = true (DoRA) is not supported");
  if (truthy("lora_bias")) return Bad(src, "lora_bias = true is not supported");
  if (present("bias") && j["bias"] != "none") {
    return Bad(src, absl::StrCat("bias is ", j["bias"].dump(), "; only \"none\" is supported"));
  }
  for (const char* k : {"rank_pattern", "alpha_pattern"}) {
    if (present(k) && !(j[k].is_object() && j[k].empty())) {
      return Bad(src,
                 absl::StrCat("non-empty \"", k, "\" (per-module rank/alpha) is not supported"));
    }
  }
  if (present("modules_to_save") &&
      !(j["modules_to_save"].is_array() && j["modules_to_save"].empty())) {
    return Bad(src, "\"modules_to_save\" is not supported (only LoRA tensors are loaded)");
  }
  if (present("init_lora_weights") && j["init_lora_weights"] == "gaussian") {
    c.init = Init::kGaussian;
  }
  absl::Status s = c.Check();
  if (!s.ok()) return Bad(src, std::string(s.message()));
  return c;
}

bool ConfigsCompatible(const LoraConfig& a, const LoraConfig& b) {
  auto sorted = [](auto v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  return a.rank == b.rank && a.alpha == b.alpha && a.use_rslora == b.use_rslora &&
         sorted(a.targets) == sorted(b.targets) && sorted(a.layers) == sorted(b.layers);
}

}  // namespace fedlora::adapters
