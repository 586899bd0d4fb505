// A frozen linear layer with zero or more LoRA adapters attached.
#ifndef FEDLORA_MODEL_LINEAR_H_
#define FEDLORA_MODEL_LINEAR_H_

#include <torch/types.h>

#include <functional>
#include <memory>
#include <vector>

#include "fedlora/model/frozen_weight.h"

namespace fedlora::model {

// One LoRA adapter on one linear layer: y += scaling * B (A dropout(x)).
// A is [G, r, in] and B is [G, out, r]. G == 1 is the ordinary case; G > 1 is a stack of G
// independent adapters for batched multi-device training: the batch dimension of the input
// splits into G equal, contiguous groups and group g only sees adapter g (and only adapter g
// receives group g's gradient).
struct LoraWeights {
  torch::Tensor A;
  torch::Tensor B;
  double scaling = 1.0;
  double dropout = 0.0;
};

class Linear {
 public:
  // [out, in], the frozen base weight. When `frozen` is set, `weight` is a placeholder of the
  // right shape and dtype without storage of its own (see IsPlaceholder), or, after a LoRA
  // merge into a compressed base, a dense correction added to the frozen weight.
  torch::Tensor weight;
  // A compact (quantized / low-rank) base weight, expanded per call; null for float bases.
  std::shared_ptr<const FrozenWeight> frozen;
  std::vector<std::shared_ptr<LoraWeights>> loras;
  // Called with every input of Forward when set (calibration statistics); must not modify it.
  std::function<void(const torch::Tensor&)> input_observer;

  int64_t in_features() const { return frozen ? frozen->in_features() : weight.size(1); }
  int64_t out_features() const { return frozen ? frozen->out_features() : weight.size(0); }

  // Installs `w` as the base weight and replaces `weight` by a zero-stride placeholder of the
  // same shape (float32, 4 bytes of storage).
  void SetFrozen(std::shared_ptr<const FrozenWeight> w);
  // True when `weight` is the placeholder SetFrozen installs (all strides zero).
  bool IsPlaceholder() const;
  // The effective base weight as a fresh float32 [out, in] tensor (frozen + correction).
  torch::Tensor DenseWeight() const;

  // x: [N, T, in] (or [M, in]). Applies the base weight and every attached adapter.
  torch::Tensor Forward(const torch::Tensor& x, bool training) const;
};

}  // namespace fedlora::model

#endif  // FEDLORA_MODEL_LINEAR_H_
