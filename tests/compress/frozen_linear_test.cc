// Linear with a packed (frozen) weight: same outputs as the expanded weight, gradients to LoRA
// only and identical to a float model's, and no dense copy kept between forward and backward.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "compress/compress_testutil.h"
#include "fedlora/compress/compress_model.h"
#include "fedlora/compress/rtn.h"
#include "fedlora/model/llama.h"
#include "testutil/tiny_llama.h"

namespace fedlora::compress {
namespace {

using model::Linear;
using model::LoraWeights;
using testing::TestMatrix;

model::LlamaConfig SmallConfig() { return fedlora::testing::TinyLlamaConfig(60, 32); }

// Counts expansions and remembers the last dense tensor weakly.
class CountingWeight : public model::FrozenWeight {
 public:
  explicit CountingWeight(torch::Tensor w) : w_(std::move(w)) {}
  int64_t out_features() const override { return w_.size(0); }
  int64_t in_features() const override { return w_.size(1); }
  torch::Tensor Dense() const override {
    ++calls;
    torch::Tensor d = w_.clone();
    last = c10::weak_intrusive_ptr<c10::TensorImpl>(d.getIntrusivePtr());
    return d;
  }
  int64_t bytes() const override { return w_.numel() * 4; }
  std::string scheme() const override { return "counting"; }
  mutable int calls = 0;
  mutable c10::weak_intrusive_ptr<c10::TensorImpl> last{c10::intrusive_ptr<c10::TensorImpl>()};

 private:
  torch::Tensor w_;
};

TEST(FrozenLinearTest, ForwardMatchesDenseAndShapesComeFromPackedWeight) {
  torch::Tensor w = TestMatrix(12, 64, 51);
  auto q = RtnWeight::Quantize(w, 4, 32);
  ASSERT_TRUE(q.ok());
  Linear lin;
  lin.SetFrozen(*q);
  EXPECT_TRUE(lin.IsPlaceholder());
  EXPECT_EQ(lin.out_features(), 12);
  EXPECT_EQ(lin.in_features(), 64);
  EXPECT_EQ(lin.weight.sizes(), w.sizes());  // adapters validate against these
  torch::Tensor x = TestMatrix(2 * 5, 64, 52).view({2, 5, 64});
  EXPECT_TRUE(torch::allclose(lin.Forward(x, false), at::linear(x, (*q)->Dense()), 1e-5, 1e-6));
  EXPECT_TRUE(torch::equal(lin.DenseWeight(), (*q)->Dense()));
}

TEST(FrozenLinearTest, BackwardReexpandsAndKeepsNoDenseCopy) {
  torch::Tensor w = TestMatrix(6, 16, 53);
  auto cw = std::make_shared<CountingWeight>(w);
  Linear lin;
  lin.SetFrozen(cw);
  auto lora = std::make_shared<LoraWeights>();
  lora->A = (TestMatrix(2, 16, 54) * 0.1).unsqueeze(0).set_requires_grad(true);
  lora->B = (TestMatrix(6, 2, 55) * 0.1).unsqueeze(0).set_requires_grad(true);
  lora->scaling = 2.0;
  lin.loras.push_back(lora);
  torch::Tensor x = TestMatrix(4, 16, 56).set_requires_grad(true);
  torch::Tensor y = lin.Forward(x, true);
  EXPECT_EQ(cw->calls, 1);
  EXPECT_TRUE(cw->last.expired()) << "the autograd graph holds the dense weight";
  torch::Tensor gy = TestMatrix(4, 6, 57);
  y.backward(gy);
  EXPECT_EQ(cw->calls, 2);
  // Reference: the same computation with a plain float weight.
  torch::Tensor x2 = x.detach().clone().set_requires_grad(true);
  torch::Tensor a2 = lora->A.detach().clone().set_requires_grad(true);
  torch::Tensor b2 = lora->B.detach().clone().set_requires_grad(true);
  torch::Tensor y2 = at::linear(x2, w) + 2.0 * at::linear(at::linear(x2, a2[0]), b2[0]);
  y2.backward(gy);
  EXPECT_TRUE(torch::allclose(y, y2, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(x.grad(), x2.grad(), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(lora->A.grad(), a2.grad(), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(lora->B.grad(), b2.grad(), 1e-5, 1e-6));
}

TEST(FrozenLinearTest, CompressedModelTrainsLoraOnlyLikeItsDenseTwin) {
  model::LlamaModel packed = model::LlamaModel::RandomInit(SmallConfig(), 5);
  CompressOptions o;
  o.method = "rtn";
  o.bits = 4;
  o.group = 16;
  o.progress = false;
  auto report = CompressModel(packed, o);
  ASSERT_TRUE(report.ok()) << report.status();
  // The dense twin: same weights, expanded, as an ordinary float model.
  model::LlamaModel dense = model::LlamaModel::RandomInit(SmallConfig(), 5);
  for (size_t l = 0; l < dense.layers.size(); ++l) {
    for (int p = 0; p < model::kNumProj; ++p) {
      dense.layers[l].proj[p].weight = packed.layers[l].proj[p].DenseWeight();
    }
  }
  std::vector<std::shared_ptr<LoraWeights>> la, lb;
  for (model::LlamaModel* m : {&packed, &dense}) {
    auto& list = m == &packed ? la : lb;
    for (auto& layer : m->layers) {
      auto lw = std::make_shared<LoraWeights>();
      lw->A = (TestMatrix(4, 32, 60) * 0.1).unsqueeze(0).set_requires_grad(true);
      lw->B = (TestMatrix(16, 4, 61) * 0.1).unsqueeze(0).set_requires_grad(true);  // 2 kv heads x 8
      layer.Get(model::Proj::kV).loras.push_back(lw);
      list.push_back(lw);
    }
  }
  torch::Tensor ids = torch::randint(0, 60, {2, 9}, torch::kInt64);
  model::ForwardOptions fo;
  fo.training = true;
  torch::Tensor la_loss = model::NextTokenLoss(packed.Forward(ids, fo), ids);
  torch::Tensor lb_loss = model::NextTokenLoss(dense.Forward(ids, fo), ids);
  EXPECT_NEAR(la_loss.item<double>(), lb_loss.item<double>(), 1e-5);
  la_loss.backward();
  lb_loss.backward();
  for (size_t i = 0; i < la.size(); ++i) {
    EXPECT_TRUE(torch::allclose(la[i]->A.grad(), lb[i]->A.grad(), 1e-4, 1e-6)) << i;
    EXPECT_TRUE(torch::allclose(la[i]->B.grad(), lb[i]->B.grad(), 1e-4, 1e-6)) << i;
  }
  for (auto& [name, t] : packed.NamedParameters()) {
    EXPECT_FALSE(t->grad().defined()) << name;
  }
  EXPECT_NEAR(report->bits_per_weight, 4.0 + 2 * 16.0 / 16, 1e-9);  // 4 + (f16 scale+min)/16
}

}  // namespace
}  // namespace fedlora::compress
