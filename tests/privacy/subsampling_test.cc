#include "fedlora/privacy/subsampling.h"

#include <cmath>
#include <limits>
#include <vector>

#include "fedlora/privacy/rdp.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::privacy {
namespace {

using ::testing::HasSubstr;

constexpr double kInf = std::numeric_limits<double>::infinity();

// Reference values from dp_accounting's own code: google/differential-privacy @ b5b0286e
// (python/dp_accounting VERSION 0.6.0, rdp_privacy_accountant.py last changed in c1371340), run
// locally with CPython 3.11 + numpy 1.24 (scipy.special replaced by an mpmath stand-in, as scipy
// was not installed):
//   rpa._compute_rdp_sample_wor_gaussian(q, sigma, kWorOrders)
struct WorReference {
  double q, sigma;
  std::vector<double> rdp;  // at kWorOrders
};
const std::vector<double> kWorOrders = {1.5, 2, 2.5, 3, 5, 8, 10.5, 16, 32, 64, 128, 256, 300, 512};
const std::vector<WorReference>& WorReferences() {
  static const auto* refs = new std::vector<WorReference>{
      {0.01,
       1.0,
       {0.0005435086381094331, 0.0005435086381094331, 0.0007377513360060875, 0.0008348726849544145,
        0.0014664462907361035, 0.0026841650126889294, 0.3000794332920306, 3.1340609222758506,
        11.26863552351778, 27.332734210751145, 59.3640264832605, 123.37948854732396,
        145.38174612503053, 251.38717419169208}},
      {0.05,
       0.65,
       {0.05194659073871647, 0.05194659073871647, 0.14417475524929463, 0.1902888375045837,
        2.34780223667127, 6.142784077745359, 9.219068803828703, 15.785673296183294,
        34.79981327316942, 72.70736372713014, 148.46542707599096, 299.95381786264005,
        352.0261525717743, 602.9169214523955}},
      {0.1,
       2.0,
       {0.011296964989239874, 0.011296964989239874, 0.015519049844277316, 0.01763009227179604,
        0.0312628135925608, 0.05269026352905094, 0.07039162503240393, 0.11263603537710969,
        1.650021505380192, 5.671869741409612, 13.684742167538134, 29.69110338578072,
        35.192032171512864, 61.694265322050114}},
      {0.001,
       0.5,
       {0.00010919033858429168, 0.00010919033858429168, 0.0002540252152061531,
        0.0003264426535170838, 1.5392658111626063, 8.204443564890624, 13.49070702644723,
        24.677937514456385, 56.8917734920365, 120.99360014802704, 249.04331079898304,
        505.0678737088671, 593.0714600785483, 1017.0800830613341}},
  };
  return *refs;
}

TEST(SampleWorGaussianTest, MatchesDpAccounting) {
  for (const WorReference& ref : WorReferences()) {
    auto rdp = ComputeRdpSampleWorGaussian(ref.q, ref.sigma, kWorOrders);
    ASSERT_TRUE(rdp.ok()) << rdp.status();
    for (size_t i = 0; i < kWorOrders.size(); ++i) {
      EXPECT_NEAR((*rdp)[i], ref.rdp[i], 1e-9 * ref.rdp[i])
          << "q " << ref.q << " sigma " << ref.sigma << " order " << kWorOrders[i];
    }
  }
}

// dp_accounting (same version and setup as above):
//   acc = RdpAccountant(DefaultRdpOrders, NeighboringRelation.REPLACE_ONE)
//   acc.compose(SelfComposedDpEvent(SampledWithoutReplacementDpEvent(10000, 100,
//                                                                    GaussianDpEvent(0.65)), 1000))
//   acc.get_epsilon_and_optimal_order(1e-5) -> (9.194194242401052, 3.0)
TEST(SampleWorGaussianTest, MultiRoundEpsilonMatchesDpAccounting) {
  const std::vector<double> orders = DefaultRdpOrders();
  auto rdp = ComputeRdpSampleWorGaussian(100.0 / 10000.0, 0.65, orders);
  ASSERT_TRUE(rdp.ok()) << rdp.status();
  for (double& r : *rdp) r *= 1000;
  auto eps = RdpToEpsilon(orders, *rdp, 1e-5);
  ASSERT_TRUE(eps.ok()) << eps.status();
  EXPECT_NEAR(eps->epsilon, 9.194194242401052, 1e-9 * 9.194194242401052);
  EXPECT_EQ(eps->order, 3);
}

TEST(SampleWorGaussianTest, EdgeCasesAndCap) {
  auto full = ComputeRdpSampleWorGaussian(1.0, 2.0, {2, 3.5, kInf});
  ASSERT_TRUE(full.ok());
  EXPECT_DOUBLE_EQ((*full)[0], 2 / 8.0);
  EXPECT_DOUBLE_EQ((*full)[1], 3.5 / 8.0);
  EXPECT_EQ((*full)[2], kInf);
  auto none = ComputeRdpSampleWorGaussian(0.0, 2.0, {2, 50});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ((*none)[0], 0);
  EXPECT_EQ((*none)[1], 0);
  // Near q = 1 Theorem 27's factor 2 would exceed the unsampled Gaussian: capped there.
  auto near_full = ComputeRdpSampleWorGaussian(0.99, 1.0, {4, 10, 10.5});
  ASSERT_TRUE(near_full.ok());
  EXPECT_DOUBLE_EQ((*near_full)[1], 10 / 2.0);
  EXPECT_DOUBLE_EQ((*near_full)[2], 10.5 / 2.0);
  EXPECT_LE((*near_full)[0], 4 / 2.0);
}

TEST(SampleWorGaussianTest, RejectsBadParametersLikePoisson) {
  auto q = ComputeRdpSampleWorGaussian(1.5, 1.0, {2});
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(q.status().message(), HasSubstr("hint"));
  EXPECT_FALSE(ComputeRdpSampleWorGaussian(-0.1, 1.0, {2}).ok());
  EXPECT_FALSE(ComputeRdpSampleWorGaussian(0.1, 0.0, {2}).ok());
  EXPECT_FALSE(ComputeRdpSampleWorGaussian(0.1, kInf, {2}).ok());
  EXPECT_FALSE(ComputeRdpSampleWorGaussian(0.1, 1.0, {1.0}).ok());
  EXPECT_FALSE(ComputeRdpSampleWorGaussian(0.1, 1.0, {std::nan("")}).ok());
}

// The general Theorem 9 bound with the Gaussian's eps(a) = a / (2 sigma^2).
IntegerRdpFn GaussianRdp(double sigma) {
  return [sigma](int a) { return a / (2 * sigma * sigma); };
}

TEST(WorSubsampledRdpTest, IsLooserThanTheGaussianSpecificBound) {
  for (double q : {0.001, 0.01, 0.1, 0.5}) {
    for (double sigma : {0.5, 1.0, 3.0}) {
      std::vector<double> orders;
      for (int a = 2; a <= 64; ++a) orders.push_back(a);
      orders.push_back(256);
      orders.push_back(300);
      auto tight = ComputeRdpSampleWorGaussian(q, sigma, orders);
      ASSERT_TRUE(tight.ok());
      for (size_t i = 0; i < orders.size(); ++i) {
        const double general = WorSubsampledRdp(static_cast<int>(orders[i]), q, GaussianRdp(sigma));
        EXPECT_GE(general, (*tight)[i] * (1 - 1e-12))
            << "q " << q << " sigma " << sigma << " order " << orders[i];
      }
    }
  }
}

TEST(WorSubsampledRdpTest, FullSamplingMonotoneAndAmplified) {
  const IntegerRdpFn eps = GaussianRdp(2.0);
  for (int a : {2, 3, 10, 64}) {
    EXPECT_EQ(WorSubsampledRdp(a, 1.0, eps), eps(a));
    double prev = 0;
    for (double q = 0.001; q <= 1.0; q *= 1.5) {
      const double r = WorSubsampledRdp(a, q, eps);
      EXPECT_GE(r, prev) << "order " << a << " q " << q;
      EXPECT_LE(r, eps(a));
      prev = r;
    }
  }
  // eps(2) = 0.25; at q = 0.01 the j = 2 term gives ~ q^2 min(4 (e^.25 - 1), 2 e^.25) = 1.1e-4.
  EXPECT_LT(WorSubsampledRdp(2, 0.01, eps), eps(2) / 100);
  EXPECT_NEAR(WorSubsampledRdp(2, 0.01, eps), std::log1p(1e-4 * 4 * std::expm1(0.25)), 1e-15);
  EXPECT_LT(WorSubsampledRdp(8, 0.01, eps), eps(8) / 50);
}

TEST(SubsamplingTest, InfiniteAndOutOfDomainCurves) {
  const IntegerRdpFn eps = [](int a) { return a <= 4 ? 0.1 * a : kInf; };
  EXPECT_TRUE(std::isfinite(WorSubsampledRdp(4, 0.1, eps)));
  EXPECT_TRUE(std::isfinite(PoissonSubsampledRdp(4, 0.1, eps)));
  EXPECT_EQ(WorSubsampledRdp(6, 0.1, eps), kInf);
  EXPECT_EQ(PoissonSubsampledRdp(6, 0.1, eps), kInf);
  EXPECT_EQ(PoissonSubsampledRdp(1, 0.1, eps), kInf);
  EXPECT_EQ(WorSubsampledRdp(2, 0.0, eps), kInf);
  EXPECT_EQ(PoissonSubsampledRdp(2, 1.5, eps), kInf);
  EXPECT_EQ(PoissonSubsampledRdp(3, 1.0, eps), eps(3));
}

}  // namespace
}  // namespace fedlora::privacy
