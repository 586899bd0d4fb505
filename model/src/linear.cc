#include "fedlora/model/linear.h"

#include <torch/types.h>

#include "fedlora/model/frozen_weight.h"

namespace fedlora::model {

void Linear::SetFrozen(std::shared_ptr<const FrozenWeight> w) {
  const int64_t out = w->out_features(), in = w->in_features();
  frozen = std::move(w);
  weight = torch::zeros({1, 1}, torch::kFloat).expand({out, in});
}

bool Linear::IsPlaceholder() const {
  return weight.defined() && weight.dim() == 2 && weight.stride(0) == 0 && weight.stride(1) == 0;
}

torch::Tensor Linear::DenseWeight() const {
  if (!frozen) return weight.detach().to(torch::kFloat).clone();
  torch::Tensor w = frozen->Dense();
  if (!IsPlaceholder() && weight.defined()) w = w + weight.detach().to(torch::kFloat);
  return w;
}

torch::Tensor Linear::Forward(const torch::Tensor& x, bool training) const {
  if (input_observer) input_observer(x);
  torch::Tensor y;
  if (frozen) {
    y = FrozenLinear(x, frozen);
    if (!IsPlaceholder()) y = y + at::linear(x, weight);
  } else if (!weight.requires_grad() && weight.scalar_type() == torch::kFloat &&
             x.scalar_type() == torch::kFloat) {
    y = FrozenDenseLinear(x, weight);  // the frozen base: oneDNN or OpenBLAS (float_gemm.h)
  } else {
    y = at::linear(x, weight);
  }
  for (const auto& lora : loras) {
    torch::Tensor xd = x;
    if (training && lora->dropout > 0) xd = at::dropout(x, lora->dropout, /*train=*/true);
    const int64_t groups = lora->A.size(0);
    const int64_t out = out_features();
    // y += scaling * (x A^T) B^T, with the scaling applied to the rank-r intermediate and the
    // addition fused into the second GEMM (addmm / baddbmm): no extra passes over y.
    if (groups == 1) {
      torch::Tensor h = at::linear(xd.reshape({-1, x.size(-1)}), lora->A[0]) * lora->scaling;
      y = at::addmm(y.reshape({-1, out}), h, lora->B[0].t()).view(y.sizes());
    } else {
      TORCH_CHECK(x.size(0) % groups == 0, "batch ", x.size(0), " not divisible into ", groups,
                  " adapter groups");
      torch::Tensor xg = xd.reshape({groups, -1, x.size(-1)});
      torch::Tensor h = at::bmm(xg, lora->A.transpose(1, 2)) * lora->scaling;
      y = at::baddbmm(y.view({groups, -1, out}), h, lora->B.transpose(1, 2)).view(y.sizes());
    }
  }
  return y;
}

}  // namespace fedlora::model
