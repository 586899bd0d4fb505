// A frozen base weight kept in a compact (packed, quantized, low-rank...) form and expanded to
// float32 only for the duration of one matrix product. Implemented by fedlora_compress.
#ifndef FEDLORA_MODEL_FROZEN_WEIGHT_H_
#define FEDLORA_MODEL_FROZEN_WEIGHT_H_

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>

namespace fedlora::model {

class FrozenWeight {
 public:
  virtual ~FrozenWeight() = default;

  virtual int64_t out_features() const = 0;
  virtual int64_t in_features() const = 0;

  // A fresh float32 [out, in] tensor holding the weight this object stands for. Callers free it
  // after use; nothing is cached.
  virtual torch::Tensor Dense() const = 0;

  // x [..., in] -> x W^T [..., out]. The default expands Dense() for this one call.
  virtual torch::Tensor Apply(const torch::Tensor& x) const;

  // dy [..., out] -> dy W [..., in]: the input gradient of Apply. The default expands Dense()
  // for this one call.
  virtual torch::Tensor ApplyTransposed(const torch::Tensor& dy) const;

  // Bytes held in memory by this object (codes, scales, factors: everything).
  virtual int64_t bytes() const = 0;

  // Short human-readable scheme, e.g. "rtn b4 g64".
  virtual std::string scheme() const = 0;
};

// y = x W^T for a frozen weight, differentiable with respect to x only. The backward pass
// expands the weight again instead of keeping the float32 copy alive between forward and
// backward, so a training step never holds more than one layer's dense weight.
torch::Tensor FrozenLinear(const torch::Tensor& x, const std::shared_ptr<const FrozenWeight>& w);

// FrozenLinear for a float32 weight W [out, in] that is not trained (a float base): its
// products go through FrozenGemm (fedlora/model/float_gemm.h), and the backward holds W
// itself, not a copy.
torch::Tensor FrozenDenseLinear(const torch::Tensor& x, const torch::Tensor& w);

}  // namespace fedlora::model

#endif  // FEDLORA_MODEL_FROZEN_WEIGHT_H_
