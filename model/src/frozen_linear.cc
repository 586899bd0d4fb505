// FrozenLinear: a matrix product with a packed weight whose backward re-expands the weight.
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "fedlora/model/frozen_weight.h"

#include "fedlora/model/float_gemm.h"

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

// A dense float32 weight [out, in] seen as a FrozenWeight, so that a frozen float base takes
// the same autograd path as a packed one (FrozenDenseLinear). Shares the tensor.
class DenseWeight final : public FrozenWeight {
 public:
  explicit DenseWeight(torch::Tensor w) : w_(std::move(w)) {}
  int64_t out_features() const override { return w_.size(0); }
  int64_t in_features() const override { return w_.size(1); }
  torch::Tensor Dense() const override { return w_.clone(); }
  torch::Tensor Apply(const torch::Tensor& x) const override {
    return FrozenGemm(x, w_, /*w_transposed=*/true);
  }
  torch::Tensor ApplyTransposed(const torch::Tensor& dy) const override {
    return FrozenGemm(dy, w_, /*w_transposed=*/false);
  }
  int64_t bytes() const override { return 0; }  // the model's own tensor, not a copy
  std::string scheme() const override { return "float32"; }

 private:
  torch::Tensor w_;
};

}  // namespace

// The expanded weight goes through FrozenGemm like a float base's (oneDNN on a shard where it
// has kernels); inputs of another dtype keep libtorch's ops.
torch::Tensor FrozenWeight::Apply(const torch::Tensor& x) const {
  torch::Tensor dense = Dense();
  if (x.scalar_type() != torch::kFloat) return at::linear(x, dense);
  return FrozenGemm(x, dense, /*w_transposed=*/true);
}

torch::Tensor FrozenWeight::ApplyTransposed(const torch::Tensor& dy) const {
  torch::Tensor dense = Dense();
  if (dy.scalar_type() != torch::kFloat) return at::matmul(dy, dense);
  return FrozenGemm(dy, dense, /*w_transposed=*/false);
}

torch::Tensor FrozenDenseLinear(const torch::Tensor& x, const torch::Tensor& w) {
  TORCH_CHECK(w.dim() == 2 && w.scalar_type() == torch::kFloat,
              "FrozenDenseLinear: expected a float32 [out, in] weight, got ", w.scalar_type(),
              " ", w.sizes());
  return FrozenLinear(x, std::make_shared<const DenseWeight>(w.detach()));
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
