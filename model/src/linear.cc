#include "fedlora/model/linear.h"

#include <torch/torch.h>

namespace fedlora::model {

torch::Tensor Linear::Forward(const torch::Tensor& x, bool training) const {
  torch::Tensor y = at::linear(x, weight);
  for (const auto& lora : loras) {
    torch::Tensor xd = x;
    if (training && lora->dropout > 0) xd = at::dropout(x, lora->dropout, /*train=*/true);
    const int64_t groups = lora->A.size(0);
    torch::Tensor delta;
    if (groups == 1) {
      delta = at::linear(at::linear(xd, lora->A[0]), lora->B[0]);
    } else {
      TORCH_CHECK(x.size(0) % groups == 0, "batch ", x.size(0), " not divisible into ", groups,
                  " adapter groups");
      torch::Tensor xg = xd.reshape({groups, -1, x.size(-1)});
      torch::Tensor h = at::bmm(xg, lora->A.transpose(1, 2));
      delta = at::bmm(h, lora->B.transpose(1, 2)).reshape(y.sizes());
    }
    y = y + delta * lora->scaling;
  }
  return y;
}

}  // namespace fedlora::model
