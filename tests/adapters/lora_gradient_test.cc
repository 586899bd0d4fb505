// LoRA gradients through the whole model match central finite differences in float64.
#include <torch/types.h>

#include <cmath>

#include "adapters/lora_testutil.h"
#include "fedlora/adapters/lora_adapter.h"
#include "gtest/gtest.h"

namespace fedlora::adapters {
namespace {

using model::Proj;

TEST(LoraGradientTest, MatchesFiniteDifferencesInFloat64) {
  model::LlamaModel m = testing::TinyModel(13);
  for (auto& [name, t] : m.NamedParameters()) *t = t->to(torch::kDouble);
  LoraConfig c;
  c.rank = 2;
  c.alpha = 3;
  c.targets = {Proj::kQ, Proj::kK, Proj::kV, Proj::kO, Proj::kGate, Proj::kUp, Proj::kDown};
  LoraAdapter a = testing::RandomAdapter(testing::TinyConfig(), c, 17, 0.3);  // B != 0
  for (torch::Tensor p : a.Parameters()) p.set_data(p.to(torch::kDouble));
  a.SetTrainable(true);
  ASSERT_TRUE(a.Attach(m).ok());

  torch::Tensor ids = testing::RandomIds(2, 6, 64, 23);
  auto loss = [&] { return model::NextTokenLoss(m.Forward(ids), ids); };
  torch::Tensor l = loss();
  ASSERT_EQ(l.scalar_type(), torch::kDouble);
  l.backward();

  std::vector<torch::Tensor> params = a.Parameters();
  const double h = 1e-6;
  int checked = 0;
  // A few entries of A and B on every projection of both layers.
  for (size_t pi = 0; pi < params.size(); ++pi) {
    torch::Tensor flat = params[pi].view({-1});
    torch::Tensor grad = params[pi].grad().view({-1});
    for (int64_t idx : {int64_t{0}, flat.numel() / 2 + 1, flat.numel() - 1}) {
      double analytic = grad[idx].item<double>();
      double plus, minus;
      {
        torch::NoGradGuard no_grad;
        const double orig = flat[idx].item<double>();
        flat[idx].fill_(orig + h);
        plus = loss().item<double>();
        flat[idx].fill_(orig - h);
        minus = loss().item<double>();
        flat[idx].fill_(orig);
      }
      const double numeric = (plus - minus) / (2 * h);
      EXPECT_NEAR(analytic, numeric, 1e-5 * std::max(std::abs(analytic), std::abs(numeric)) + 1e-9)
          << "param " << pi << " (" << (pi % 2 == 0 ? "A" : "B") << ") entry " << idx;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 3 * 28);
  // The check is not vacuous: gradients are of a sensible size.
  EXPECT_GT(params[0].grad().abs().max().item<double>(), 1e-4);
  EXPECT_GT(params[1].grad().abs().max().item<double>(), 1e-4);
}

}  // namespace
}  // namespace fedlora::adapters
