#include "fedlora/privacy/rdp.h"

#include <cmath>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::privacy {
namespace {

using ::testing::HasSubstr;

// dp_accounting rdp_privacy_accountant_test.py: test_compute_rdp_sequence.
TEST(RdpTest, MatchesDpAccountingSequence) {
  const std::vector<double> orders = {1.5, 2.5, 5, 50, 100};
  const std::vector<double> expected = {6.70579741e-04, 1.08548710e-03, 2.18075656e-03,
                                        2.38460375e-02, 1.67416308e+02};
  auto rdp = ComputeRdpPoissonGaussian(0.01, 2.5, orders);
  ASSERT_TRUE(rdp.ok()) << rdp.status();
  for (size_t i = 0; i < orders.size(); ++i) {
    EXPECT_NEAR((*rdp)[i] * 50, expected[i], 1e-4 * expected[i]) << "order " << orders[i];
  }
}

// TensorFlow Privacy compute_dp_sgd_privacy: n=60000, batch 150, noise 1.3, 15 epochs.
TEST(RdpTest, MatchesTensorFlowPrivacyMnistEpsilon) {
  DpSgdQuery query{150.0 / 60000.0, 1.3, 6000, 1e-5};
  auto eps = ComputeEpsilon(query);
  ASSERT_TRUE(eps.ok()) << eps.status();
  EXPECT_NEAR(eps->epsilon, 0.7242234026, 1e-6 * 0.7242234026);
}

TEST(RdpTest, FullBatchIsPlainGaussian) {
  auto rdp = ComputeRdpPoissonGaussian(1.0, 2.0, {2, 3.5, 10});
  ASSERT_TRUE(rdp.ok());
  EXPECT_DOUBLE_EQ((*rdp)[0], 2 / 8.0);
  EXPECT_DOUBLE_EQ((*rdp)[1], 3.5 / 8.0);
  EXPECT_DOUBLE_EQ((*rdp)[2], 10 / 8.0);
}

TEST(RdpTest, FractionalOrdersInterpolateIntegerNeighbours) {
  // RDP is non-decreasing in the order; fractional orders must sit between integer ones.
  auto rdp = ComputeRdpPoissonGaussian(0.05, 1.1, {2, 2.5, 3, 7, 7.5, 8});
  ASSERT_TRUE(rdp.ok());
  EXPECT_LE((*rdp)[0], (*rdp)[1]);
  EXPECT_LE((*rdp)[1], (*rdp)[2]);
  EXPECT_LE((*rdp)[3], (*rdp)[4]);
  EXPECT_LE((*rdp)[4], (*rdp)[5]);
}

TEST(RdpTest, EpsilonGrowsWithStepsAndShrinksWithNoise) {
  auto e1 = ComputeEpsilon({0.01, 1.0, 100, 1e-5});
  auto e2 = ComputeEpsilon({0.01, 1.0, 1000, 1e-5});
  auto e3 = ComputeEpsilon({0.01, 2.0, 1000, 1e-5});
  ASSERT_TRUE(e1.ok() && e2.ok() && e3.ok());
  EXPECT_LT(e1->epsilon, e2->epsilon);
  EXPECT_LT(e3->epsilon, e2->epsilon);
  EXPECT_EQ(ComputeEpsilon({0.01, 1.0, 0, 1e-5})->epsilon, 0);
}

TEST(RdpTest, NoiseMultiplierInvertsEpsilon) {
  DpSgdQuery query{150.0 / 60000.0, 0, 6000, 1e-5};
  auto noise = ComputeNoiseMultiplier(query, 0.7242234026);
  ASSERT_TRUE(noise.ok()) << noise.status();
  EXPECT_NEAR(*noise, 1.3, 1e-4);
  for (double target : {0.5, 2.0, 8.0}) {
    auto z = ComputeNoiseMultiplier({0.01, 0, 500, 1e-6}, target);
    ASSERT_TRUE(z.ok()) << z.status();
    auto at = ComputeEpsilon({0.01, *z, 500, 1e-6});
    auto below = ComputeEpsilon({0.01, *z * (1 - 1e-4), 500, 1e-6});
    EXPECT_LE(at->epsilon, target);
    EXPECT_GT(below->epsilon, target);  // smallest such noise
  }
}

TEST(RdpTest, DeltaConversionIsConsistentWithEpsilon) {
  auto orders = DefaultRdpOrders();
  auto rdp = ComputeRdpPoissonGaussian(0.02, 1.2, orders);
  ASSERT_TRUE(rdp.ok());
  for (double& r : *rdp) r *= 300;
  auto eps = RdpToEpsilon(orders, *rdp, 1e-6);
  ASSERT_TRUE(eps.ok());
  auto delta = RdpToDelta(orders, *rdp, eps->epsilon);
  ASSERT_TRUE(delta.ok());
  EXPECT_LE(*delta, 1e-6 * (1 + 1e-9));
  EXPECT_GT(*delta, 1e-7);
}

TEST(RdpTest, AccountantComposesHeterogeneousRounds) {
  RdpAccountant acc;
  ASSERT_TRUE(acc.ComposePoissonGaussian(0.01, 2.5, 30).ok());
  ASSERT_TRUE(acc.ComposePoissonGaussian(0.01, 2.5, 20).ok());
  auto one_shot = ComputeEpsilon({0.01, 2.5, 50, 1e-5});
  EXPECT_NEAR(acc.GetEpsilon(1e-5)->epsilon, one_shot->epsilon, 1e-12);
  EXPECT_FALSE(acc.ComposeRdp({1.0, 2.0}).ok());  // wrong length
}

TEST(RdpTest, BadParametersGiveClearErrors) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THAT(ComputeEpsilon({0.0, 1.0, 10, 1e-5}).status().message(), HasSubstr("q must be"));
  EXPECT_THAT(ComputeEpsilon({1.5, 1.0, 10, 1e-5}).status().message(), HasSubstr("q must be"));
  EXPECT_THAT(ComputeEpsilon({nan, 1.0, 10, 1e-5}).status().message(), HasSubstr("q must be"));
  EXPECT_THAT(ComputeEpsilon({0.1, 0.0, 10, 1e-5}).status().message(), HasSubstr("noise"));
  EXPECT_THAT(ComputeEpsilon({0.1, -1.0, 10, 1e-5}).status().message(), HasSubstr("noise"));
  EXPECT_THAT(ComputeEpsilon({0.1, 1.0, 10, 0.0}).status().message(), HasSubstr("delta"));
  EXPECT_THAT(ComputeEpsilon({0.1, 1.0, 10, 1.0}).status().message(), HasSubstr("delta"));
  EXPECT_THAT(ComputeEpsilon({0.1, 1.0, -1, 1e-5}).status().message(), HasSubstr("steps"));
  EXPECT_EQ(ComputeNoiseMultiplier({0.1, 0, 10, 1e-5}, -1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ComputeNoiseMultiplier({1.0, 0, 1000000, 1e-5}, 1e-9).status().code(),
            absl::StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace fedlora::privacy
