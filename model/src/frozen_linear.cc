// FrozenLinear: a matrix product with a packed weight whose backward re-expands the weight.
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "fedlora/model/frozen_weight.h"

namespace fedlora::model {
namespace {

// Backward of y = x W^T with respect to x: dx = dy W. Holds the packed weight only.
struct FrozenLinearBackward : public torch::autograd::Node {
  explicit FrozenLinearBackward(std::shared_ptr<const FrozenWeight> w) : weight(std::move(w)) {}
  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    torch::autograd::variable_list out(1);
    if (!grads[0].defined() || !should_compute_output(0)) return out;
    out[0] = weight->ApplyTransposed(grads[0]);
    return out;
  }
  std::string name() const override { return "FrozenLinearBackward"; }
  void release_variables() override {}
  std::shared_ptr<const FrozenWeight> weight;
};

}  // namespace

torch::Tensor FrozenWeight::Apply(const torch::Tensor& x) const {
  torch::Tensor dense = Dense();
  return at::linear(x, dense);
}

torch::Tensor FrozenWeight::ApplyTransposed(const torch::Tensor& dy) const {
  torch::Tensor dense = Dense();
  return at::matmul(dy, dense);
}

torch::Tensor FrozenLinear(const torch::Tensor& x, const std::shared_ptr<const FrozenWeight>& w) {
  torch::Tensor y;
  {
    torch::autograd::AutoGradMode no_grad(false);
    y = w->Apply(x.detach());
  }
  if (torch::autograd::GradMode::is_enabled() && x.requires_grad()) {
    auto node = std::shared_ptr<FrozenLinearBackward>(new FrozenLinearBackward(w),
                                                      torch::autograd::deleteNode);
    node->set_next_edges(torch::autograd::collect_next_edges(x));
    torch::autograd::set_history(y, node);
  }
  return y;
}

}  // namespace fedlora::model
