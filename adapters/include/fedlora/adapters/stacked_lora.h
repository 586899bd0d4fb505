// StackedLora: G adapters of one LoraConfig stacked for batched multi-device training.
// Each slot gets one LoraWeights with A [G, r, in] and B [G, out, r]; the model splits the
// batch into G equal contiguous groups and group g only sees (and only sends gradient to)
// slice g. Note that a loss averaged over the whole batch gives group g 1/G of its own
// mean-loss gradient: sum the per-group mean losses to train each group as if alone.
#ifndef FEDLORA_ADAPTERS_STACKED_LORA_H_
#define FEDLORA_ADAPTERS_STACKED_LORA_H_

#include <torch/types.h>

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedlora/adapters/lora_config.h"
#include "fedlora/model/config.h"
#include "fedlora/model/linear.h"
#include "fedlora/model/llama.h"

namespace fedlora::adapters {

class StackedLora {
 public:
  // One group per entry of `flats`, each in LoraAdapter's flat layout for (base, config).
  // The stacked tensors are float32 leaves with requires_grad set. INVALID_ARGUMENT for no
  // groups, a bad config, or a flat of the wrong size (group and both sizes given).
  static absl::StatusOr<StackedLora> Create(const model::LlamaConfig& base,
                                            const LoraConfig& config,
                                            const std::vector<std::vector<float>>& flats);

  // Checks shapes against `base` (errors as LoraAdapter::Validate) and appends one LoraWeights
  // per slot to the base's Linear::loras. FAILED_PRECONDITION if already attached to `base`.
  absl::Status Attach(model::LlamaModel& base);
  // Removes exactly what Attach added to `base`.
  void Detach(model::LlamaModel& base);

  // The stacked leaves (A [G, r, in] and B [G, out, r] per slot, in flat order).
  std::vector<torch::Tensor> Parameters() const;
  int groups() const { return groups_; }
  const LoraConfig& config() const { return config_; }
  // Floats per group in the flat layout.
  int64_t NumParametersPerGroup() const;
  // Group g's adapter in the flat layout (CHECK-fails for g outside [0, groups())).
  std::vector<float> Flatten(int group) const;

 private:
  StackedLora() = default;
  struct Slot {
    int layer;
    model::Proj proj;
    torch::Tensor A;  // [G, r, in]
    torch::Tensor B;  // [G, out, r]
  };
  LoraConfig config_;
  int groups_ = 0;
  int num_layers_ = 0;
  std::vector<Slot> slots_;
  std::vector<std::shared_ptr<model::LoraWeights>> attached_;
};

}  // namespace fedlora::adapters

#endif  // FEDLORA_ADAPTERS_STACKED_LORA_H_
