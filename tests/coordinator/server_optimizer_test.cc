#include "fedlora/coordinator/server_optimizer.h"

#include <cmath>

#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

TEST(ServerOptimizerTest, FedAvgAddsScaledDelta) {
  ServerOptimizer opt(ServerOptimizerKind::kFedAvg, 0.5, 0.9, 0.99, 1e-3, 2);
  std::vector<float> g = {1.0f, 2.0f};
  ASSERT_TRUE(opt.Apply({2.0f, -4.0f}, &g).ok());
  EXPECT_FLOAT_EQ(g[0], 2.0f);
  EXPECT_FLOAT_EQ(g[1], 0.0f);
}

TEST(ServerOptimizerTest, FedAdamAndFedYogiFollowReddiEtAl) {
  for (auto kind : {ServerOptimizerKind::kFedAdam, ServerOptimizerKind::kFedYogi}) {
    const double lr = 0.1, b1 = 0.9, b2 = 0.99, tau = 1e-3;
    ServerOptimizer opt(kind, lr, b1, b2, tau, 1);
    std::vector<float> g = {0.0f};
    double x = 0, m = 0, v = tau * tau;
    for (double d : {0.5, -0.2, 0.3}) {
      ASSERT_TRUE(opt.Apply({static_cast<float>(d)}, &g).ok());
      m = b1 * m + (1 - b1) * d;
      if (kind == ServerOptimizerKind::kFedAdam) {
        v = b2 * v + (1 - b2) * d * d;
      } else {
        v = v - (1 - b2) * d * d * ((v - d * d) > 0 ? 1 : -1);
      }
      x += lr * m / (std::sqrt(v) + tau);
      EXPECT_NEAR(g[0], x, 1e-5);
    }
  }
}

TEST(ServerOptimizerTest, RejectsNonFiniteAndWrongSize) {
  ServerOptimizer opt(ServerOptimizerKind::kFedAvg, 1.0, 0.9, 0.99, 1e-3, 2);
  std::vector<float> g = {1.0f, 1.0f};
  EXPECT_FALSE(opt.Apply({NAN, 0.0f}, &g).ok());
  EXPECT_EQ(g[0], 1.0f);
  EXPECT_FALSE(opt.Apply({0.0f}, &g).ok());
}

}  // namespace
}  // namespace fedlora::coordinator
