#include "fedlora/privacy/clipping.h"

#include <cmath>
#include <limits>

#include "fedlora/privacy/gaussian_noise.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::privacy {
namespace {

using ::testing::HasSubstr;

TEST(ClipTest, FixedBoundScalesOnlyLargeDeltas) {
  std::vector<float> v = {3, 4};  // norm 5
  auto r = ClipL2InPlace(v, 1.0);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->clipped);
  EXPECT_DOUBLE_EQ(r->norm, 5.0);
  EXPECT_LE(L2Norm(v.data(), v.size()), 1.0);
  EXPECT_NEAR(L2Norm(v.data(), v.size()), 1.0, 1e-5);
  EXPECT_NEAR(v[0] / v[1], 0.75, 1e-6);  // direction kept
  std::vector<float> small = {0.1f, 0.2f};
  auto r2 = ClipL2InPlace(small, 1.0);
  ASSERT_TRUE(r2.ok());
  EXPECT_FALSE(r2->clipped);
  EXPECT_EQ(small[0], 0.1f);
}

TEST(ClipTest, NonFiniteEntriesAreRejectedAndLeaveDataUnchanged) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    std::vector<float> v = {100, bad, 3};
    auto r = ClipL2InPlace(v, 1.0);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr("entry 1"));
    EXPECT_EQ(v[0], 100);
  }
  std::vector<float> ok = {1, 2};
  EXPECT_FALSE(ClipL2InPlace(ok, 0.0).ok());
  EXPECT_FALSE(ClipL2InPlace(ok, std::nan("")).ok());
}

TEST(ClipTest, NoiseParamsMatchTensorFlowFederatedFormula) {
  auto p = AdaptiveClipNoiseParams(1.0, 100);  // s = 5
  ASSERT_TRUE(p.ok());
  EXPECT_DOUBLE_EQ(p->clipped_count_stddev, 5.0);
  EXPECT_NEAR(p->value_noise_multiplier, std::pow(1.0 - 1.0 / 100.0, -0.5), 1e-12);
  auto zero = AdaptiveClipNoiseParams(0.0, 100);
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero->value_noise_multiplier, 0);
  EXPECT_EQ(zero->clipped_count_stddev, 0);
  // z >= 2s: (z^-2 - (2s)^-2) <= 0 -> error.
  auto bad = AdaptiveClipNoiseParams(1.0, 10);  // s = 0.5, 2s = 1
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("clipped_count_stddev"));
  EXPECT_TRUE(AdaptiveClipNoiseParams(1.0, 10, 0.6).ok());
}

// TensorFlow Privacy quantile_adaptive_clip_sum_query_test (geometric): C0 = 16, lr = ln 2,
// target 0, no noise, two devices with norms 5 and 2.5.
TEST(AdaptiveClipTest, MatchesTensorFlowPrivacyGeometricVector) {
  AdaptiveClipConfig config;
  config.initial_clip = 16;
  config.target_quantile = 0;
  config.learning_rate = std::log(2.0);
  config.expected_clients = 2;
  config.clipped_count_stddev = 0;
  auto clipper = AdaptiveClipper::Create(config);
  ASSERT_TRUE(clipper.ok());
  SeededRandom rng(1);
  const double expected[] = {8, 4, 2.8284271247, 2, 2};
  for (double e : expected) {
    uint64_t count = AdaptiveClipper::ClipBit(5.0, clipper->clip()) +
                     AdaptiveClipper::ClipBit(2.5, clipper->clip());
    auto c = clipper->Update(count, 2, rng);
    ASSERT_TRUE(c.ok());
    EXPECT_NEAR(*c, e, 1e-6);
  }
}

TEST(AdaptiveClipTest, ConvergesToTargetQuantileWithNoise) {
  AdaptiveClipConfig config;  // TFF defaults: C0 0.1, q 0.5, lr 0.2
  config.expected_clients = 100;
  config.clipped_count_stddev = 0.05 * 100;
  auto clipper = AdaptiveClipper::Create(config);
  ASSERT_TRUE(clipper.ok());
  SeededRandom rng(7);
  for (int round = 0; round < 400; ++round) {
    uint64_t count = 0;
    for (int i = 0; i < 100; ++i) {  // norms uniform in [0, 10): median 5
      count += AdaptiveClipper::ClipBit(10 * rng.UniformDouble(), clipper->clip());
    }
    ASSERT_TRUE(clipper->Update(count, 100, rng).ok());
  }
  EXPECT_NEAR(clipper->clip(), 5.0, 1.0);
}

TEST(AdaptiveClipTest, RejectsBadConfigAndCounts) {
  AdaptiveClipConfig c;
  EXPECT_FALSE(AdaptiveClipper::Create(c).ok());  // expected_clients unset
  c.expected_clients = 10;
  c.target_quantile = 1.5;
  EXPECT_FALSE(AdaptiveClipper::Create(c).ok());
  c.target_quantile = 0.5;
  auto clipper = AdaptiveClipper::Create(c);
  ASSERT_TRUE(clipper.ok());
  SeededRandom rng(1);
  EXPECT_FALSE(clipper->Update(11, 10, rng).ok());
  EXPECT_EQ(clipper->clip(), 0.1);
  EXPECT_EQ(AdaptiveClipper::ClipBit(std::nan(""), 1.0), 0u);
}

TEST(CentralDpTest, NaNDeltaNeverReachesTheAggregate) {
  auto agg = CentralDpAggregator::Create(3, 1.0, 0.0);
  ASSERT_TRUE(agg.ok());
  ASSERT_TRUE(agg->Add({0.1f, 0.2f, 0.3f}).ok());
  auto bad = agg->Add({0.1f, std::nanf(""), 0.3f});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(agg->Add({1.0f, 2.0f}).ok());  // wrong size
  EXPECT_EQ(agg->num_added(), 1);
  SeededRandom rng(3);
  auto out = agg->Release(rng);
  for (float x : out) EXPECT_TRUE(std::isfinite(x));
  EXPECT_FLOAT_EQ(out[1], 0.2f);
}

TEST(CentralDpTest, NoiseHasPredictedSpreadAndIsRepeatable) {
  const size_t d = 20000;
  auto agg = CentralDpAggregator::Create(d, 2.0, 1.5);
  ASSERT_TRUE(agg.ok());
  std::vector<float> big(d, 1.0f);  // norm sqrt(d) -> clipped to 2
  ASSERT_TRUE(agg->Add(big).ok());
  SeededRandom rng1(42), rng2(42);
  auto a = agg->Release(rng1);
  auto b = agg->Release(rng2);
  EXPECT_EQ(a, b);
  const double signal = 2.0 / std::sqrt(static_cast<double>(d));
  double mean = 0, var = 0;
  for (float x : a) mean += x - signal;
  mean /= d;
  for (float x : a) var += (x - signal - mean) * (x - signal - mean);
  var /= d - 1;
  const double expected_var = 3.0 * 3.0;  // (z * C)^2
  EXPECT_NEAR(mean, 0, 5 * 3.0 / std::sqrt(static_cast<double>(d)));
  // Sample variance stddev ~ var * sqrt(2/d) = 0.09; 5 sigma band.
  EXPECT_NEAR(var, expected_var, 5 * expected_var * std::sqrt(2.0 / d));
}

TEST(LocalDpTest, ClipsThenNoises) {
  std::vector<float> v(10000, 1.0f);
  SeededRandom rng(5);
  auto r = ClipAndAddLocalNoise(v, 1.0, 0.5, rng);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->clipped);
  double var = 0;
  for (float x : v) var += (x - 0.01) * (x - 0.01);
  var /= v.size();
  EXPECT_NEAR(var, 0.25, 5 * 0.25 * std::sqrt(2.0 / v.size()));
  std::vector<float> bad = {1, std::nanf("")};
  EXPECT_FALSE(ClipAndAddLocalNoise(bad, 1.0, 0.5, rng).ok());
  EXPECT_FALSE(ClipAndAddLocalNoise(v, 1.0, -1, rng).ok());
}

}  // namespace
}  // namespace fedlora::privacy
