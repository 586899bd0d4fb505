#include "fedlora/privacy/round_accounting.h"

#include <cmath>
#include <limits>
#include <vector>

#include "fedlora/privacy/rdp.h"
#include "fedlora/privacy/subsampling.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::privacy {
namespace {

using ::testing::HasSubstr;

constexpr double kInf = std::numeric_limits<double>::infinity();

DdgParams ValueParams() {
  DdgConfig c;
  c.dim = 1 << 16;
  c.expected_clients = 100;
  c.l2_clip = 1.0;
  c.noise_multiplier = 1.0;
  c.bits = 16;
  return *ChooseDdgParams(c);
}

// A clipped-count release: one integer coordinate, each device adds 0 or 1.
DdgSumMechanism CountRelease() { return {1.0, 1.0, 25.0, 100, 1}; }

RoundMechanism Gaussian(Sampling s, double q, double z) {
  RoundMechanism m;
  m.sampling = s;
  m.q = q;
  m.gaussian_noise_multiplier = z;
  return m;
}

RoundMechanism Ddg(Sampling s, double q, std::vector<DdgSumMechanism> mechs) {
  RoundMechanism m;
  m.sampling = s;
  m.q = q;
  m.ddg = std::move(mechs);
  return m;
}

TEST(RoundAccountingTest, GaussianUsesTheMatchingAccountant) {
  const std::vector<double> orders = DefaultRdpOrders();
  auto poisson = ComputeRoundRdp(Gaussian(Sampling::kPoisson, 0.01, 1.1), orders);
  auto fixed = ComputeRoundRdp(Gaussian(Sampling::kFixedSize, 0.01, 1.1), orders);
  auto poisson_ref = ComputeRdpPoissonGaussian(0.01, 1.1, orders);
  auto fixed_ref = ComputeRdpSampleWorGaussian(0.01, 1.1 / 2, orders);
  ASSERT_TRUE(poisson.ok() && fixed.ok() && poisson_ref.ok() && fixed_ref.ok());
  EXPECT_EQ(*poisson, *poisson_ref);
  EXPECT_EQ(*fixed, *fixed_ref);
}

TEST(RoundAccountingTest, FixedSizeChargesMoreThanPoissonAtTheSameQ) {
  const std::vector<double> orders = DefaultRdpOrders();
  for (double q : {0.001, 0.01, 0.1, 1.0}) {
    for (const auto& [poisson, fixed] :
         {std::pair{Gaussian(Sampling::kPoisson, q, 1.0), Gaussian(Sampling::kFixedSize, q, 1.0)},
          std::pair{Ddg(Sampling::kPoisson, q, {DdgValueMechanism(ValueParams())}),
                    Ddg(Sampling::kFixedSize, q, {DdgValueMechanism(ValueParams())})}}) {
      auto rp = ComputeRoundRdp(poisson, orders);
      auto rf = ComputeRoundRdp(fixed, orders);
      ASSERT_TRUE(rp.ok() && rf.ok()) << rp.status() << rf.status();
      for (size_t i = 0; i < orders.size(); ++i) {
        EXPECT_GT((*rf)[i], (*rp)[i]) << "q " << q << " order " << orders[i];
      }
      auto ep = RdpToEpsilon(orders, *rp, 1e-5);
      auto ef = RdpToEpsilon(orders, *rf, 1e-5);
      EXPECT_GT(ef->epsilon, ep->epsilon) << "q " << q;
    }
  }
  // Full participation: replace-one doubles the sensitivity, so 4x the add/remove RDP.
  auto full = ComputeRoundRdp(Gaussian(Sampling::kFixedSize, 1.0, 2.0), {3});
  EXPECT_DOUBLE_EQ((*full)[0], 4 * 3 / (2 * 4.0));
}

TEST(RoundAccountingTest, DdgRoundComposesValueAndCount) {
  const DdgParams params = ValueParams();
  const DdgSumMechanism value = DdgValueMechanism(params), count = CountRelease();
  const std::vector<double> orders = {1.5, 2, 3, 10.5, 64, 256, kInf};
  auto poisson = ComputeRoundRdp(Ddg(Sampling::kPoisson, 1.0, {value, count}), orders);
  auto fixed = ComputeRoundRdp(Ddg(Sampling::kFixedSize, 1.0, {value, count}), orders);
  ASSERT_TRUE(poisson.ok() && fixed.ok());
  for (size_t i = 0; i + 1 < orders.size(); ++i) {
    const double a = orders[i];
    EXPECT_DOUBLE_EQ((*poisson)[i], DdgSumRdp(value, a) + DdgSumRdp(count, a));
    EXPECT_DOUBLE_EQ((*fixed)[i],
                     DdgSumRdp(ReplaceOne(value), a) + DdgSumRdp(ReplaceOne(count), a));
  }
  EXPECT_EQ(poisson->back(), kInf);
  EXPECT_EQ(fixed->back(), kInf);
  // The count costs something, and with only the value the round equals ComputeDdgRdp.
  auto value_only = ComputeRoundRdp(Ddg(Sampling::kPoisson, 0.02, {value}), orders);
  auto with_count = ComputeRoundRdp(Ddg(Sampling::kPoisson, 0.02, {value, count}), orders);
  auto legacy = ComputeDdgRdp(params, 0.02, orders);
  ASSERT_TRUE(value_only.ok() && with_count.ok() && legacy.ok());
  EXPECT_EQ(*value_only, *legacy);
  for (size_t i = 0; i + 1 < orders.size(); ++i) EXPECT_GT((*with_count)[i], (*value_only)[i]);
}

TEST(RoundAccountingTest, ReplaceOneDoublesBothSensitivities) {
  const DdgSumMechanism m{3.0, 7.0, 4.0, 10, 8};
  const DdgSumMechanism r = ReplaceOne(m);
  EXPECT_EQ(r.l2_sensitivity, 6.0);
  EXPECT_EQ(r.l1_sensitivity, 14.0);
  EXPECT_EQ(r.local_sigma2, 4.0);
  EXPECT_EQ(r.n_min, 10);
  EXPECT_EQ(r.dim, 8.0);
  // Negligible tau: RDP is alpha/2 (L2 / (sqrt(n) sigma))^2, so doubling L2 quadruples it.
  EXPECT_NEAR(DdgSumRdp(r, 5), 4 * DdgSumRdp(m, 5), 1e-9);
}

TEST(RoundAccountingTest, RejectsBadRoundsWithHints) {
  const std::vector<double> orders = {2, 3};
  auto expect_invalid = [&](const RoundMechanism& m, const std::vector<double>& o,
                            const std::string& substr) {
    auto r = ComputeRoundRdp(m, o);
    ASSERT_FALSE(r.ok()) << substr;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr(substr));
  };
  expect_invalid(Gaussian(Sampling::kPoisson, 0.0, 1.0), orders, "q must be in (0, 1]");
  expect_invalid(Gaussian(Sampling::kFixedSize, 1.5, 1.0), orders, "hint");
  expect_invalid(Gaussian(Sampling::kPoisson, std::nan(""), 1.0), orders, "q must be");
  RoundMechanism neither;
  expect_invalid(neither, orders, "exactly one");
  RoundMechanism both = Gaussian(Sampling::kPoisson, 0.1, 1.0);
  both.ddg = {CountRelease()};
  expect_invalid(both, orders, "exactly one");
  expect_invalid(Gaussian(Sampling::kPoisson, 0.1, 0.0), orders, "noise multiplier");
  expect_invalid(Gaussian(Sampling::kFixedSize, 0.1, -1.0), orders, "noise multiplier");
  expect_invalid(Gaussian(Sampling::kPoisson, 0.1, kInf), orders, "noise multiplier");
  expect_invalid(Ddg(Sampling::kPoisson, 0.1, {{1, 1, 0.0, 10, 1}}), orders, "local_sigma2");
  expect_invalid(Ddg(Sampling::kPoisson, 0.1, {CountRelease(), {1, 1, 4.0, 0, 1}}), orders,
                 "DDG mechanism 1");
  expect_invalid(Ddg(Sampling::kPoisson, 0.1, {{-1, 1, 4.0, 10, 1}}), orders, "sensitivities");
  expect_invalid(Ddg(Sampling::kPoisson, 0.1, {{1, 1, 4.0, 10, 0.5}}), orders, "dim");
  expect_invalid(Gaussian(Sampling::kPoisson, 0.1, 1.0), {2, 1.0}, "orders must be > 1");
  expect_invalid(Ddg(Sampling::kFixedSize, 0.1, {CountRelease()}), {std::nan("")}, "orders");
}

TEST(RoundAccountingTest, DescribesTheNeighbouringRelation) {
  EXPECT_EQ(DescribeAccounting(Gaussian(Sampling::kPoisson, 0.1, 1.0)),
            "add/remove one user; Poisson sampling, q = 0.1");
  EXPECT_EQ(DescribeAccounting(Ddg(Sampling::kFixedSize, 0.1, {CountRelease()})),
            "replace one user (population size public); fixed-size cohort sampled without "
            "replacement, q = 0.1");
  EXPECT_EQ(DescribeAccounting(Gaussian(Sampling::kFixedSize, 0.0025, 1.0)),
            "replace one user (population size public); fixed-size cohort sampled without "
            "replacement, q = 0.0025");
}

TEST(RoundAccountingTest, ManyRoundsGiveAFiniteGrowingEpsilon) {
  const std::vector<double> orders = DefaultRdpOrders();
  double prev = 0;
  for (long long rounds : {10, 100, 1000}) {
    auto r = ComputeRoundRdp(Gaussian(Sampling::kFixedSize, 0.01, 1.3), orders);
    ASSERT_TRUE(r.ok());
    for (double& v : *r) v *= static_cast<double>(rounds);
    auto e = RdpToEpsilon(orders, *r, 1e-5);
    ASSERT_TRUE(e.ok());
    EXPECT_TRUE(std::isfinite(e->epsilon));
    EXPECT_GT(e->epsilon, prev);
    prev = e->epsilon;
  }
  // Same as dp_accounting's REPLACE_ONE accountant (see subsampling_test.cc): 9.1942 at 1000.
  EXPECT_NEAR(prev, 9.194194242401052, 1e-9 * 9.194194242401052);
}

TEST(RoundAccountingTest, RoundsEpsilonComposesTheRoundRdp) {
  // ComputeRoundsEpsilon = the per-round RDP times the rounds, as the loop above does by hand.
  auto e = ComputeRoundsEpsilon(Gaussian(Sampling::kFixedSize, 0.01, 1.3), 1000, 1e-5);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_NEAR(e->epsilon, 9.194194242401052, 1e-9 * 9.194194242401052);
  auto p = ComputeRoundsEpsilon(Gaussian(Sampling::kPoisson, 0.0025, 1.3), 6000, 1e-5);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_NEAR(p->epsilon, 0.7242234026, 1e-9);
  EXPECT_FALSE(ComputeRoundsEpsilon(Gaussian(Sampling::kFixedSize, 0.01, 1.3), -1, 1e-5).ok());
  EXPECT_FALSE(ComputeRoundsEpsilon(Gaussian(Sampling::kFixedSize, 0.01, 1.3), 10, 1.5).ok());
}

TEST(RoundAccountingTest, NoiseForAFixedSizeCohortReachesTheTargetAndNoLess) {
  for (Sampling s : {Sampling::kPoisson, Sampling::kFixedSize}) {
    auto z = ComputeRoundsNoiseMultiplier(s, 0.05, 200, 1e-5, 4.0);
    ASSERT_TRUE(z.ok()) << z.status();
    auto at = ComputeRoundsEpsilon(Gaussian(s, 0.05, *z), 200, 1e-5);
    auto below = ComputeRoundsEpsilon(Gaussian(s, 0.05, *z * 0.999), 200, 1e-5);
    ASSERT_TRUE(at.ok() && below.ok());
    EXPECT_LE(at->epsilon, 4.0);
    EXPECT_GT(below->epsilon, 4.0);
  }
  // Replace-one neighbours need more noise for the same epsilon.
  EXPECT_GT(*ComputeRoundsNoiseMultiplier(Sampling::kFixedSize, 0.05, 200, 1e-5, 4.0),
            *ComputeRoundsNoiseMultiplier(Sampling::kPoisson, 0.05, 200, 1e-5, 4.0));
  auto none = ComputeRoundsNoiseMultiplier(Sampling::kFixedSize, 1.0, 100000, 1e-5, 1e-6);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace fedlora::privacy
