// The device's half of the privacy path (PrepareUpdate) and the distributed clipped count.
#include "fedlora/privacy/prepare_update.h"

#include <cmath>
#include <limits>
#include <set>

#include "fedlora/privacy/ddg_count.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::privacy {
namespace {

using ::testing::HasSubstr;

RoundPrivacyParams Distributed(size_t dim, bool clip_bit) {
  RoundPrivacyParams p;
  p.mode = DpMode::kDistributed;
  p.dim = dim;
  p.clip = 1.0;
  p.value.dim = dim;
  p.value.expected_clients = 20;
  p.value.min_clients = 16;
  p.value.l2_clip = 1.0;
  p.value.noise_multiplier = 1.0;
  p.value.bits = 20;
  p.rotation_seed = 77;
  p.send_clip_bit = clip_bit;
  if (clip_bit) p.count = *ChooseCountDdgParams(1.0, 20, 16, 20);
  return p;
}

std::vector<float> Delta(size_t dim, float v) { return std::vector<float>(dim, v); }

TEST(PrepareUpdateTest, RefusesSeededNoiseOutsideSimulations) {
  auto p = Distributed(100, false);
  auto d = Delta(100, 0.01f);
  SeededRandom seeded(1);
  auto r = PrepareUpdate(d.data(), d.size(), p, seeded);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("SecureRandom"));
  PrepareOptions sim;
  sim.allow_seeded_noise = true;
  EXPECT_TRUE(PrepareUpdate(d.data(), d.size(), p, seeded, sim).ok());
  SecureRandom secure;
  EXPECT_TRUE(PrepareUpdate(d.data(), d.size(), p, secure).ok());
}

TEST(PrepareUpdateTest, DistributedOutputIsOnlyNoisedIntegersInTheModulus) {
  auto p = Distributed(100, true);
  auto d = Delta(100, 0.5f);  // norm 5 > clip 1
  SecureRandom rng;
  auto r = PrepareUpdate(d.data(), d.size(), p, rng);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->secagg_input.size(), 128u + 1u);  // padded dim + the count
  for (uint32_t v : r->secagg_input) EXPECT_LT(v, 1u << 20);
  EXPECT_TRUE(r->clipped_delta.empty());  // nothing in the clear
  EXPECT_TRUE(r->clipped);
  EXPECT_NEAR(r->norm, 5.0, 1e-5);
  // The same delta twice gives different vectors: the noise is fresh, not a function of what
  // the server knows (delta-independent parameters, rotation seed).
  auto again = PrepareUpdate(d.data(), d.size(), p, rng);
  ASSERT_TRUE(again.ok());
  EXPECT_NE(r->secagg_input, again->secagg_input);
}

TEST(PrepareUpdateTest, BadUpdatesAreRefusedAndNothingIsSent) {
  auto p = Distributed(100, false);
  SecureRandom rng;
  auto d = Delta(100, 0.01f);
  d[42] = std::numeric_limits<float>::quiet_NaN();
  auto r = PrepareUpdate(d.data(), d.size(), p, rng);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("42"));
  auto shorter = Delta(99, 0.01f);
  EXPECT_EQ(PrepareUpdate(shorter.data(), shorter.size(), p, rng).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto inconsistent = p;
  inconsistent.send_clip_bit = true;  // but no count parameters
  auto ok = Delta(100, 0.01f);
  EXPECT_EQ(PrepareUpdate(ok.data(), ok.size(), inconsistent, rng).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PrepareUpdateTest, CentralModeClipsAndReportsTheBit) {
  RoundPrivacyParams p;
  p.mode = DpMode::kCentral;
  p.dim = 4;
  p.clip = 1.0;
  p.send_clip_bit = true;
  SecureRandom rng;
  std::vector<float> big = {3, 4, 0, 0}, small = {0.3f, 0.4f, 0, 0};
  auto a = PrepareUpdate(big.data(), 4, p, rng);
  auto b = PrepareUpdate(small.data(), 4, p, rng);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NEAR(a->clipped_delta[0], 0.6f, 1e-6);
  EXPECT_EQ(a->clip_bit, 0u);
  EXPECT_EQ(b->clip_bit, 1u);
  EXPECT_TRUE(a->secagg_input.empty());
}

// The clipped count through secure aggregation carries the devices' noise: the server's
// estimate varies from round to round around the true count, with the calibrated stddev.
TEST(DdgCountTest, TheServerSeesANoisyCountWithTheCalibratedSpread) {
  const int n = 20, m = 16, bits = 20;
  const double s = 1.0;
  auto params = ChooseCountDdgParams(s, n, m, bits);
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_GE(params->scale, 2);
  SeededRandom rng(5);
  const int below = 13;  // 13 of 20 devices not clipped: centered sum 13 - 10 = 3
  std::vector<double> estimates;
  for (int trial = 0; trial < 400; ++trial) {
    uint64_t sum = 0;
    for (int d = 0; d < n; ++d) sum += *EncodeCount(d < below ? 1 : 0, *params, rng);
    estimates.push_back(DecodeCount(static_cast<uint32_t>(sum & ((1u << bits) - 1)), *params));
  }
  double mean = 0, var = 0;
  for (double e : estimates) mean += e;
  mean /= estimates.size();
  for (double e : estimates) var += (e - mean) * (e - mean);
  var /= estimates.size() - 1;
  EXPECT_NEAR(mean, 3.0, 0.2);
  // n devices each add s^2/m of variance (in count units): total s^2 n/m.
  EXPECT_NEAR(std::sqrt(var), s * std::sqrt(double(n) / m), 0.12);
  std::set<double> distinct(estimates.begin(), estimates.end());
  EXPECT_GT(distinct.size(), 50u);
}

TEST(DdgCountTest, RefusesSettingsThatCannotFit) {
  EXPECT_EQ(ChooseCountDdgParams(0, 10, 8, 20).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ChooseCountDdgParams(1, 10, 11, 20).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ChooseCountDdgParams(100, 1000, 800, 8).status().code(), absl::StatusCode::kOutOfRange);
  auto p = ChooseCountDdgParams(1, 10, 8, 20);
  ASSERT_TRUE(p.ok());
  auto mech = CountMechanism(*p);
  EXPECT_EQ(mech.l2_sensitivity, p->scale / 2.0);
  EXPECT_EQ(mech.n_min, 8);
  EXPECT_EQ(mech.dim, 1);
}

}  // namespace
}  // namespace fedlora::privacy
