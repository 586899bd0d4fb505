#include "slots.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fedlora::adapters::internal {

using model::Proj;

std::pair<int64_t, int64_t> ProjShape(const model::LlamaConfig& c, Proj p) {
  const int64_t q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  switch (p) {
    case Proj::kQ:
      return {q, c.hidden_size};
    case Proj::kK:
    case Proj::kV:
      return {kv, c.hidden_size};
    case Proj::kO:
      return {c.hidden_size, q};
    case Proj::kGate:
    case Proj::kUp:
      return {c.intermediate_size, c.hidden_size};
    case Proj::kDown:
      return {c.hidden_size, c.intermediate_size};
  }
  return {0, 0};
}

absl::StatusOr<std::vector<SlotSpec>> PlanSlots(const model::LlamaConfig& base,
                                                const LoraConfig& config) {
  absl::Status s = config.Check();
  if (!s.ok()) return s;
  std::vector<int> layers = config.layers;
  if (layers.empty()) {
    for (int i = 0; i < base.num_hidden_layers; ++i) layers.push_back(i);
  }
  std::sort(layers.begin(), layers.end());
  if (!layers.empty() && layers.back() >= base.num_hidden_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("LoRA layer index ", layers.back(), " is out of range: the base model has ",
                     base.num_hidden_layers, " layers (hint: wrong base model?)"));
  }
  std::set<Proj> targets(config.targets.begin(), config.targets.end());
  std::vector<SlotSpec> out;
  for (int layer : layers) {
    for (Proj p : targets) {
      auto [o, i] = ProjShape(base, p);
      out.push_back({layer, p, o, i});
    }
  }
  return out;
}

std::string PeftName(int layer, Proj p, char which) {
  return absl::StrCat("base_model.model.model.layers.", layer, ".", model::ProjModule(p), ".",
                      model::ProjName(p), ".lora_", std::string(1, which), ".weight");
}

std::string BaseName(int layer, Proj p) {
  return absl::StrCat("model.layers.", layer, ".", model::ProjModule(p), ".", model::ProjName(p),
                      ".weight");
}

std::string ShapeStr(c10::IntArrayRef shape) { return "[" + absl::StrJoin(shape, ", ") + "]"; }

absl::Status CheckSlotFits(const model::LlamaModel& base, int layer, Proj p, int rank,
                           c10::IntArrayRef a, c10::IntArrayRef b, c10::ScalarType dtype) {
  const int num_layers = static_cast<int>(base.layers.size());
  if (layer < 0 || layer >= num_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("LoRA tensor '", PeftName(layer, p, 'A'), "' is for layer ", layer,
                     " but the base model has ", num_layers, " layers (hint: wrong base model?)"));
  }
  const torch::Tensor& w = base.layers[layer].Get(p).weight;
  if (!w.defined() || w.dim() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("LoRA tensor '", PeftName(layer, p, 'A'), "' targets '", BaseName(layer, p),
                     "', which the base model does not have (hint: wrong base model?)"));
  }
  const int64_t out = w.size(0), in = w.size(1);
  const std::vector<int64_t> want_a = {rank, in}, want_b = {out, rank};
  if (a.vec() != want_a) {
    return absl::InvalidArgumentError(
        absl::StrCat("LoRA tensor '", PeftName(layer, p, 'A'), "' has shape ", ShapeStr(a),
                     " but base weight '", BaseName(layer, p), "' ", ShapeStr(w.sizes()), " needs ",
                     ShapeStr(want_a), " (hint: wrong base model?)"));
  }
  if (b.vec() != want_b) {
    return absl::InvalidArgumentError(
        absl::StrCat("LoRA tensor '", PeftName(layer, p, 'B'), "' has shape ", ShapeStr(b),
                     " but base weight '", BaseName(layer, p), "' ", ShapeStr(w.sizes()), " needs ",
                     ShapeStr(want_b), " (hint: wrong base model?)"));
  }
  if (w.scalar_type() != dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat("LoRA tensor '", PeftName(layer, p, 'A'), "' is ", c10::toString(dtype),
                     " but base weight '", BaseName(layer, p), "' is ",
                     c10::toString(w.scalar_type()), " (hint: convert both to the same dtype)"));
  }
  return absl::OkStatus();
}

absl::Status CheckCoverage(const model::LlamaModel& base, const LoraConfig& config,
                           int num_layers_in_adapter) {
  if (!config.layers.empty()) return absl::OkStatus();
  const int num_layers = static_cast<int>(base.layers.size());
  if (num_layers_in_adapter != num_layers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "LoRA adapter covers all layers of a ", num_layers_in_adapter,
        "-layer model but the base model has ", num_layers, " layers (hint: wrong base model?)"));
  }
  return absl::OkStatus();
}

void RemoveLoras(model::LlamaModel& base,
                 const std::vector<std::shared_ptr<model::LoraWeights>>& remove) {
  std::set<const model::LoraWeights*> gone;
  for (const auto& w : remove) gone.insert(w.get());
  for (auto& layer : base.layers) {
    for (auto& lin : layer.proj) {
      auto& v = lin.loras;
      v.erase(
          std::remove_if(v.begin(), v.end(), [&](const auto& w) { return gone.count(w.get()); }),
          v.end());
    }
  }
}

bool AnyAttached(const model::LlamaModel& base,
                 const std::vector<std::shared_ptr<model::LoraWeights>>& ws) {
  std::set<const model::LoraWeights*> mine;
  for (const auto& w : ws) mine.insert(w.get());
  for (const auto& layer : base.layers) {
    for (const auto& lin : layer.proj) {
      for (const auto& w : lin.loras) {
        if (mine.count(w.get())) return true;
      }
    }
  }
  return false;
}

}  // namespace fedlora::adapters::internal
