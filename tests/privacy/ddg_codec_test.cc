#include "fedlora/privacy/ddg_codec.h"

#include <cmath>
#include <limits>

#include "fedlora/privacy/clipping.h"
#include "fedlora/privacy/hadamard.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::privacy {
namespace {

using ::testing::HasSubstr;

std::vector<float> RandomVector(size_t d, double scale, RandomSource& rng) {
  std::vector<float> v(d);
  for (auto& x : v) x = static_cast<float>(scale * rng.StandardNormal());
  return v;
}

TEST(HadamardTest, RotationPreservesNormsAndInverts) {
  SeededRandom rng(3);
  for (size_t d : {1, 5, 64, 1000, 4097}) {
    auto v = RandomVector(d, 1.0, rng);
    std::vector<double> y;
    RotateForward(v.data(), d, 777, &y);
    EXPECT_EQ(y.size(), PaddedDim(d));
    double ny = 0;
    for (double x : y) ny += x * x;
    EXPECT_NEAR(std::sqrt(ny), L2Norm(v.data(), d), 1e-9 * (1 + std::sqrt(ny)));
    std::vector<float> back;
    RotateInverse(y, d, 777, &back);
    ASSERT_EQ(back.size(), d);
    for (size_t i = 0; i < d; ++i) EXPECT_NEAR(back[i], v[i], 1e-5);
  }
}

TEST(HadamardTest, RotationFlattensASpike) {
  std::vector<float> spike(1024, 0.0f);
  spike[17] = 1.0f;
  std::vector<double> y;
  RotateForward(spike.data(), spike.size(), 5, &y);
  for (double x : y) EXPECT_NEAR(std::fabs(x), 1.0 / 32.0, 1e-12);
}

DdgConfig BaseConfig(size_t d) {
  DdgConfig c;
  c.dim = d;
  c.expected_clients = 20;
  c.l2_clip = 1.0;
  c.noise_multiplier = 0.5;
  c.bits = 20;
  return c;
}

TEST(DdgCodecTest, DecodedSumMatchesClippedSumWithinPredictedSpread) {
  const size_t d = 3000;
  auto codec = DdgCodec::Create(BaseConfig(d));
  ASSERT_TRUE(codec.ok()) << codec.status();
  const uint64_t round_seed = 2024;
  SeededRandom data_rng(1);
  std::vector<double> clipped_sum(d, 0.0);
  std::vector<uint32_t> total(codec->params().padded_dim, 0);
  const uint64_t mask = (1ull << 20) - 1;
  for (int dev = 0; dev < 20; ++dev) {
    auto delta = RandomVector(d, dev % 2 == 0 ? 0.05 : 0.001, data_rng);  // some get clipped
    std::vector<float> clipped = delta;
    ASSERT_TRUE(ClipL2InPlace(clipped, 1.0).ok());
    for (size_t i = 0; i < d; ++i) clipped_sum[i] += clipped[i];
    SeededRandom device_rng(100 + dev);
    std::vector<uint32_t> enc;
    auto stats = codec->Encode(delta.data(), d, round_seed, device_rng, &enc);
    ASSERT_TRUE(stats.ok()) << stats.status();
    ASSERT_EQ(enc.size(), codec->params().padded_dim);
    for (size_t i = 0; i < enc.size(); ++i) {
      ASSERT_LE(enc[i], mask);
      total[i] = static_cast<uint32_t>((total[i] + enc[i]) & mask);  // secagg: sum mod 2^b
    }
  }
  auto decoded = codec->Decode(total, round_seed);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  double mse = 0, bias = 0;
  for (size_t i = 0; i < d; ++i) {
    const double e = (*decoded)[i] - clipped_sum[i];
    mse += e * e;
    bias += e;
  }
  mse /= d;
  bias /= d;
  const double predicted = codec->PredictedErrorStddev(20);
  // Target central noise: z * C = 0.5 (plus a little rounding noise).
  EXPECT_NEAR(predicted, 0.5, 0.05);
  // Error variance within 10% of prediction (sampling error of the variance ~ sqrt(2/d) = 2.6%;
  // conditional rounding adds a small bias), and no systematic offset.
  EXPECT_NEAR(std::sqrt(mse), predicted, 0.1 * predicted);
  EXPECT_NEAR(bias, 0, 5 * predicted / std::sqrt(static_cast<double>(d)));
}

TEST(DdgCodecTest, NoiselessRoundTripIsAccurate) {
  DdgConfig c = BaseConfig(500);
  c.noise_multiplier = 0;
  c.expected_clients = 3;
  auto codec = DdgCodec::Create(c);
  ASSERT_TRUE(codec.ok()) << codec.status();
  SeededRandom rng(8);
  auto delta = RandomVector(500, 0.01, rng);
  std::vector<uint32_t> enc;
  ASSERT_TRUE(codec->Encode(delta.data(), 500, 1, rng, &enc).ok());
  auto dec = codec->Decode(enc, 1);
  ASSERT_TRUE(dec.ok());
  for (size_t i = 0; i < 500; ++i) EXPECT_NEAR((*dec)[i], delta[i], 4 * codec->params().gamma);
}

TEST(DdgCodecTest, RefusesOverflowingSettingsWithClearError) {
  DdgConfig c = BaseConfig(100);
  c.expected_clients = 16;
  c.min_clients = 16;
  c.bits = 4;  // 2^8 = 256 > 16 * k^2 = 242: fits
  EXPECT_TRUE(ChooseDdgParams(c).ok());
  c.modclip_prob = 1e-5;  // k = 4.42: 16 * k^2 = 312 > 256 -> overflow
  auto bad = ChooseDdgParams(c);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(bad.status().message(), HasSubstr("overflow"));
  c.modclip_prob = 1e-4;
  c.bits = 3;  // cannot even hold 16 devices
  EXPECT_EQ(ChooseDdgParams(c).status().code(), absl::StatusCode::kOutOfRange);
  c.bits = 33;
  EXPECT_EQ(ChooseDdgParams(c).status().code(), absl::StatusCode::kInvalidArgument);
  c.bits = 20;
  c.modclip_prob = 0;
  EXPECT_EQ(ChooseDdgParams(c).status().code(), absl::StatusCode::kInvalidArgument);
  c.modclip_prob = 1e-4;
  c.min_clients = 17;
  EXPECT_EQ(ChooseDdgParams(c).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DdgCodecTest, NaNDeltaIsRejectedBeforeEncoding) {
  auto codec = DdgCodec::Create(BaseConfig(10));
  ASSERT_TRUE(codec.ok());
  std::vector<float> delta(10, 0.1f);
  delta[3] = std::numeric_limits<float>::quiet_NaN();
  std::vector<uint32_t> out;
  SeededRandom rng(1);
  auto r = codec->Encode(delta.data(), 10, 1, rng, &out);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(codec->Encode(delta.data(), 9, 1, rng, &out).ok());
  std::vector<uint32_t> too_big(codec->params().padded_dim, 1u << 20);
  EXPECT_FALSE(codec->Decode(too_big, 1).ok());
  EXPECT_FALSE(codec->Decode({1, 2}, 1).ok());
}

TEST(DdgCodecTest, ParamsFollowTheHeuristic) {
  auto p = ChooseDdgParams(BaseConfig(1 << 16));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->padded_dim, 1u << 16);
  EXPECT_NEAR(p->k_stddevs, 3.8906, 1e-3);  // sqrt(2) erfcinv(1e-4)
  EXPECT_NEAR(p->local_stddev, 0.5 / std::sqrt(20.0), 1e-12);
  // Worst-case aggregate stddev (in scaled units) times 2k fills 2^b.
  const double n = 20, D = 1 << 16, s = p->scale;
  const double agg = std::sqrt(n * n / D * s * s + n * (0.25 + p->local_sigma2_scaled));
  EXPECT_NEAR(2 * p->k_stddevs * agg, std::ldexp(1.0, 20), 1.0);
}

}  // namespace
}  // namespace fedlora::privacy
