// A frozen linear layer with zero or more LoRA adapters attached.
#ifndef FEDLORA_MODEL_LINEAR_H_
#define FEDLORA_MODEL_LINEAR_H_

#include <torch/types.h>

#include <memory>
#include <vector>

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
  torch::Tensor weight;  // [out, in], frozen base weight
  std::vector<std::shared_ptr<LoraWeights>> loras;

  int64_t in_features() const { return weight.size(1); }
  int64_t out_features() const { return weight.size(0); }

  // x: [N, T, in] (or [M, in]). Applies the base weight and every attached adapter.
  torch::Tensor Forward(const torch::Tensor& x, bool training) const;
};

}  // namespace fedlora::model

#endif  // FEDLORA_MODEL_LINEAR_H_
