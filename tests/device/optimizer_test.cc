#include "fedlora/device/optimizer.h"

#include <torch/types.h>

#include <cmath>

#include "gtest/gtest.h"

namespace fedlora::device {
namespace {

TEST(OptimizerTest, AdamWMatchesClosedFormFirstSteps) {
  torch::Tensor p = torch::tensor({1.0f, -2.0f}).set_requires_grad(true);
  OptimizerOptions o;
  o.lr = 0.1;
  o.weight_decay = 0.01;
  Optimizer opt({p}, o);
  // Reference AdamW (PyTorch's algorithm) in double.
  double x[2] = {1.0, -2.0}, m[2] = {0, 0}, v[2] = {0, 0};
  for (int step = 1; step <= 3; ++step) {
    double g[2] = {2 * x[0] + 0.5, std::sin(x[1])};
    p.mutable_grad() = torch::tensor({float(g[0]), float(g[1])});
    opt.Step();
    for (int i = 0; i < 2; ++i) {
      x[i] *= 1 - 0.1 * 0.01;
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
      double mh = m[i] / (1 - std::pow(0.9, step)), vh = v[i] / (1 - std::pow(0.999, step));
      x[i] -= 0.1 * mh / (std::sqrt(vh) + 1e-8);
    }
    EXPECT_NEAR(p[0].item<double>(), x[0], 1e-5);
    EXPECT_NEAR(p[1].item<double>(), x[1], 1e-5);
  }
}

TEST(OptimizerTest, SgdWithMomentum) {
  torch::Tensor p = torch::tensor({1.0f}).set_requires_grad(true);
  OptimizerOptions o;
  o.kind = OptimizerOptions::Kind::kSgd;
  o.lr = 0.5;
  o.momentum = 0.9;
  Optimizer opt({p}, o);
  p.mutable_grad() = torch::tensor({1.0f});
  opt.Step();
  EXPECT_FLOAT_EQ(p.item<float>(), 0.5f);
  p.mutable_grad() = torch::tensor({1.0f});
  opt.Step();  // buffer = 0.9 + 1 = 1.9
  EXPECT_FLOAT_EQ(p.item<float>(), 0.5f - 0.95f);
}

TEST(OptimizerTest, WarmupAndCosineSchedule) {
  OptimizerOptions o;
  o.lr = 1.0;
  o.warmup_steps = 4;
  o.total_steps = 14;
  o.schedule = OptimizerOptions::Schedule::kCosine;
  Optimizer opt({torch::zeros({1})}, o);
  EXPECT_DOUBLE_EQ(opt.LearningRate(0), 0.25);
  EXPECT_DOUBLE_EQ(opt.LearningRate(3), 1.0);
  EXPECT_NEAR(opt.LearningRate(4), 1.0, 1e-12);
  EXPECT_NEAR(opt.LearningRate(9), 0.5, 1e-12);
  EXPECT_NEAR(opt.LearningRate(14), 0.0, 1e-12);
}

TEST(OptimizerTest, GroupedClippingIsPerGroup) {
  // Two groups: group 0 has a large gradient (clipped), group 1 a small one (untouched).
  torch::Tensor p = torch::zeros({2, 3}).set_requires_grad(true);
  OptimizerOptions o;
  o.kind = OptimizerOptions::Kind::kSgd;
  o.lr = 1.0;
  o.max_grad_norm = 1.0;
  Optimizer opt({p}, o, /*groups=*/2);
  p.mutable_grad() = torch::tensor({{3.0f, 4.0f, 0.0f}, {0.3f, 0.4f, 0.0f}});
  double norm = opt.Step();
  EXPECT_NEAR(norm, 5.0, 1e-5);
  EXPECT_NEAR(p[0][0].item<float>(), -0.6f, 1e-5);
  EXPECT_NEAR(p[0][1].item<float>(), -0.8f, 1e-5);
  EXPECT_NEAR(p[1][0].item<float>(), -0.3f, 1e-6);
  EXPECT_NEAR(p[1][1].item<float>(), -0.4f, 1e-6);
}

TEST(OptimizerTest, ParsesNames) {
  EXPECT_TRUE(ParseOptimizer("adamw").ok());
  EXPECT_TRUE(ParseOptimizer("sgd").ok());
  EXPECT_FALSE(ParseOptimizer("lion").ok());
  EXPECT_FALSE(ParseSchedule("linear").ok());
}

}  // namespace
}  // namespace fedlora::device
