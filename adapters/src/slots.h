// Internal helpers shared by LoraAdapter, the PEFT reader/writer and StackedLora: which
// (layer, projection) slots an adapter has, their shapes, names and checks against a base.
#ifndef FEDLORA_ADAPTERS_SLOTS_H_
#define FEDLORA_ADAPTERS_SLOTS_H_

#include <torch/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedlora/adapters/lora_config.h"
#include "fedlora/model/config.h"
#include "fedlora/model/llama.h"

namespace fedlora::adapters::internal {

struct SlotSpec {
  int layer;
  model::Proj proj;
  int64_t out;
  int64_t in;
};

// {out, in} of projection `p` in a model of architecture `c`.
std::pair<int64_t, int64_t> ProjShape(const model::LlamaConfig& c, model::Proj p);

// The slots of `config` on a model of architecture `base`, in flat order. INVALID_ARGUMENT if
// config.Check() fails or a layer is out of range.
absl::StatusOr<std::vector<SlotSpec>> PlanSlots(const model::LlamaConfig& base,
                                                const LoraConfig& config);

// "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight" (which = 'A' or 'B').
std::string PeftName(int layer, model::Proj p, char which);
// "model.layers.3.self_attn.q_proj.weight"
std::string BaseName(int layer, model::Proj p);
std::string ShapeStr(c10::IntArrayRef shape);

// Checks that LoRA factors of shapes a = [r, in], b = [out, r] and `dtype` fit the base weight
// of (layer, p). INVALID_ARGUMENT naming the tensor, both shapes, "(hint: wrong base model?)".
absl::Status CheckSlotFits(const model::LlamaModel& base, int layer, model::Proj p, int rank,
                           c10::IntArrayRef a, c10::IntArrayRef b, c10::ScalarType dtype);

// With config.layers empty ("all layers"), the adapter's layers must be exactly 0..L-1 of the
// base. INVALID_ARGUMENT otherwise.
absl::Status CheckCoverage(const model::LlamaModel& base, const LoraConfig& config,
                           int num_layers_in_adapter);

// Removes every LoraWeights in `remove` from every Linear of `base`, keeping the others in order.
void RemoveLoras(model::LlamaModel& base,
                 const std::vector<std::shared_ptr<model::LoraWeights>>& remove);

// True if any LoraWeights in `ws` is attached to a Linear of `base`.
bool AnyAttached(const model::LlamaModel& base,
                 const std::vector<std::shared_ptr<model::LoraWeights>>& ws);

}  // namespace fedlora::adapters::internal

#endif  // FEDLORA_ADAPTERS_SLOTS_H_
