#include "fedlora/privacy/discrete_gaussian.h"

#include <cmath>
#include <map>
#include <vector>

#include "gtest/gtest.h"

namespace fedlora::privacy {
namespace {

// Upper critical value of chi-square with `df` degrees of freedom at p = 0.001
// (Wilson-Hilferty approximation; z = 3.0902).
double ChiSquareCritical(int df) {
  const double z = 3.0902;
  const double a = 2.0 / (9.0 * df);
  return df * std::pow(1 - a + z * std::sqrt(a), 3);
}

// Exact pmf of N_Z(0, sigma2) over [-limit, limit] (mass outside is < 1e-30 for our limits).
std::map<int64_t, double> ExactPmf(double sigma2, int64_t limit) {
  std::map<int64_t, double> pmf;
  double total = 0;
  for (int64_t k = -limit; k <= limit; ++k) {
    pmf[k] = std::exp(-static_cast<double>(k) * k / (2 * sigma2));
    total += pmf[k];
  }
  for (auto& [k, p] : pmf) p /= total;
  return pmf;
}

class DiscreteGaussianFitTest : public ::testing::TestWithParam<double> {};

TEST_P(DiscreteGaussianFitTest, ChiSquareMeanVarianceAndTailMatchExactPmf) {
  const double sigma2 = GetParam();
  auto sampler = DiscreteGaussianSampler::Create(sigma2);
  ASSERT_TRUE(sampler.ok()) << sampler.status();
  const int kSamples = 200000;
  SeededRandom rng(1234);
  std::map<int64_t, int64_t> counts;
  double sum = 0, sum_sq = 0;
  for (int i = 0; i < kSamples; ++i) {
    const int64_t x = sampler->Sample(rng);
    ++counts[x];
    sum += static_cast<double>(x);
    sum_sq += static_cast<double>(x) * x;
  }
  const double sigma = std::sqrt(sigma2);
  const auto pmf = ExactPmf(sigma2, static_cast<int64_t>(40 * sigma) + 40);

  // Chi-square over bins with expected count >= 5; the remaining tails pooled into one bin.
  double chi2 = 0, tail_expected = 0;
  int64_t tail_observed = 0;
  int bins = 0;
  for (const auto& [k, p] : pmf) {
    const double expected = p * kSamples;
    const int64_t observed = counts.count(k) ? counts.at(k) : 0;
    if (expected >= 5) {
      chi2 += (observed - expected) * (observed - expected) / expected;
      ++bins;
    } else {
      tail_expected += expected;
      tail_observed += observed;
    }
  }
  if (tail_expected > 0) {
    chi2 += (tail_observed - tail_expected) * (tail_observed - tail_expected) / tail_expected;
    ++bins;
  }
  EXPECT_LT(chi2, ChiSquareCritical(bins - 1)) << "bins=" << bins;

  // Mean 0 and exact variance, within 5 standard errors.
  const double var = DiscreteGaussianVariance(sigma2);
  const double mean = sum / kSamples;
  EXPECT_NEAR(mean, 0.0, 5 * std::sqrt(var / kSamples));
  const double sample_var = sum_sq / kSamples - mean * mean;
  EXPECT_NEAR(sample_var, var, 5 * var * std::sqrt(2.0 / kSamples));

  // Tail: P(|X| >= 2 sigma) against the exact pmf (binomial standard error).
  double p_tail = 0;
  for (const auto& [k, p] : pmf) {
    if (std::abs(static_cast<double>(k)) >= 2 * sigma) p_tail += p;
  }
  int64_t n_tail = 0;
  for (const auto& [k, c] : counts) {
    if (std::abs(static_cast<double>(k)) >= 2 * sigma) n_tail += c;
  }
  EXPECT_NEAR(static_cast<double>(n_tail) / kSamples, p_tail,
              5 * std::sqrt(p_tail * (1 - p_tail) / kSamples));
}

INSTANTIATE_TEST_SUITE_P(Variances, DiscreteGaussianFitTest,
                         ::testing::Values(0.3, 1.0, 2.5, 16.0, 400.0, 1e6));

TEST(DiscreteGaussianTest, VarianceHelperMatchesContinuousForLargeSigma) {
  EXPECT_NEAR(DiscreteGaussianVariance(100.0), 100.0, 1e-6);
  EXPECT_LT(DiscreteGaussianVariance(0.25), 0.25);  // discrete variance is smaller for small sigma
}

TEST(DiscreteGaussianTest, RepeatableWithSeed) {
  auto sampler = DiscreteGaussianSampler::Create(9.0);
  ASSERT_TRUE(sampler.ok());
  SeededRandom a(99), b(99);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(sampler->Sample(a), sampler->Sample(b));
}

TEST(DiscreteGaussianTest, RationalAndRangeChecks) {
  auto exact = DiscreteGaussianSampler::CreateRational(5, 2);
  ASSERT_TRUE(exact.ok());
  EXPECT_DOUBLE_EQ(exact->sigma2(), 2.5);
  EXPECT_FALSE(DiscreteGaussianSampler::Create(0.0).ok());
  EXPECT_FALSE(DiscreteGaussianSampler::Create(-1.0).ok());
  EXPECT_FALSE(DiscreteGaussianSampler::Create(std::nan("")).ok());
  EXPECT_FALSE(DiscreteGaussianSampler::Create(1e30).ok());
  EXPECT_FALSE(DiscreteGaussianSampler::CreateRational(0, 1).ok());
  auto rounded = DiscreteGaussianSampler::Create(1.0 / 3.0);
  ASSERT_TRUE(rounded.ok());
  EXPECT_NEAR(rounded->sigma2(), 1.0 / 3.0, 1e-14);
}

}  // namespace
}  // namespace fedlora::privacy
