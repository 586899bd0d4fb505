// DDG accounting checked quantitatively: against the DDGauss authors' reference code, against
// exact Renyi divergences of sums of discrete Gaussians, and the Poisson amplification bound
// against the tight sampled-Gaussian accountant.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "fedlora/privacy/ddg_accounting.h"
#include "fedlora/privacy/rdp.h"
#include "fedlora/privacy/round_accounting.h"
#include "fedlora/privacy/subsampling.h"
#include "gtest/gtest.h"

namespace fedlora::privacy {
namespace {

// The authors' default grid, RDP_ORDERS = range(2, 129) + (256,).
std::vector<double> AuthorsOrders() {
  std::vector<double> orders;
  for (int a = 2; a <= 128; ++a) orders.push_back(a);
  orders.push_back(256);
  return orders;
}

// Reference values from the DDGauss authors' accounting code (Kairouz, Liu, Steinke ICML 2021):
// google-research/federated @ a5af8c44 distributed_dp/accounting_utils.py, run locally with
// CPython 3.11 + numpy 1.24, `tfp` = tensorflow_privacy v0.8.0 rdp_accountant.py (the version
// the code pins), scipy.special replaced by an mpmath stand-in (scipy was not installed):
//   k = sqrt(2) erfcinv(1e-4); local_stddev = z C / sqrt(n_min)
//   gamma = 1 / heuristic_scale_factor(local_stddev, C, bits, n, 2**16, k)
//   compute_rdp_dgaussian(q, l1_scale, l2_scale, tau, 2**16, 1, kShowOrders), with l1/l2/tau
//     as ddgauss_epsilon derives them (rounding=True, beta = exp(-0.5))
//   ddgauss_epsilon(gamma, local_stddev, n_min, C, exp(-0.5), 2**16, q, steps, delta)
// with C = 1, z = 1, d = 2^16, n = 100 devices per round.
const std::vector<double> kShowOrders = {2, 3, 8, 32, 128, 256};
struct DdgReference {
  int bits, n_min;
  double q;
  long long steps;
  double delta;
  double gamma, scaled_l2_bound;
  std::vector<double> rdp_full, rdp_sampled;  // one round at kShowOrders, q = 1 and q
  double epsilon;
  double order;
};
const std::vector<DdgReference>& DdgReferences() {
  static const auto* refs = new std::vector<DdgReference>{
      {20,
       100,
       0.01,
       1000,
       1e-5,
       7.96677928907334e-06,
       125521.80386819663,
       {1.0000090147888658, 1.5000135221832989, 4.000036059155463, 16.000144236621853,
        64.00057694648741, 128.00115389297483},
       {0.0001718158721383256, 0.0002847165318003442, 0.0014037043303229651, 11.28185927975599,
        59.36779606839443, 123.38223249954626},
       2.4503135654639,
       7},
      {16,
       100,
       0.01,
       1000,
       1e-5,
       0.00012746849099922296,
       7846.6282302678665,
       {1.0003957590368542, 1.5005936385552814, 4.001583036147417, 16.006332144589667,
        64.02532857835867, 128.05065715671734},
       {0.0001719210033337415, 0.0002849075467005746, 0.0014063392019942414, 11.28804718772376,
        59.392547700265695, 123.43173576328878},
       2.451415524934573,
       7},
      {12,
       100,
       1.0,
       10,
       1e-5,
       0.002039587506296006,
       507.3378514522766,
       {1.0707281402439857, 1.6060922103659785, 4.282912560975943, 17.13165024390377,
        68.52660097561508, 137.05320195123016},
       {1.0707281402439857, 1.6060922103659785, 4.282912560975943, 17.13165024390377,
        68.52660097561508, 137.05320195123016},
       20.833912506290197,
       2},
      // EMNIST-like accounting of the paper's FL runs (q = 100/3400, 1500 rounds, delta = 1/N),
      // with 80 of 100 devices guaranteed to survive.
      {18,
       80,
       100.0 / 3400.0,
       1500,
       1.0 / 3400.0,
       3.5153680219428066e-05,
       28447.313988805487,
       {1.000055558899938, 1.500083338349907, 4.000222235599752, 16.00088894239901,
        64.00355576959603, 128.00711153919207},
       {0.0014854298163303747, 0.0029096872795886797, 0.2124616512091084, 12.396213958559887,
        60.45807911713776, 124.47123043325846},
       7.475525022242927,
       3},
  };
  return *refs;
}

TEST(DdgReferenceTest, MatchesAuthorsAccountingCode) {
  for (const DdgReference& ref : DdgReferences()) {
    SCOPED_TRACE(testing::Message() << "bits " << ref.bits << " n_min " << ref.n_min);
    DdgConfig c;
    c.dim = 1 << 16;
    c.expected_clients = 100;
    c.min_clients = ref.n_min;
    c.l2_clip = 1.0;
    c.noise_multiplier = 1.0;
    c.bits = ref.bits;
    auto p = ChooseDdgParams(c);
    ASSERT_TRUE(p.ok()) << p.status();
    // Same inputs as the reference run (the heuristic itself is the codec's business).
    ASSERT_NEAR(p->gamma, ref.gamma, 1e-9 * ref.gamma);
    ASSERT_NEAR(p->scaled_l2_bound, ref.scaled_l2_bound, 1e-9 * ref.scaled_l2_bound);
    const DdgSumMechanism m = DdgValueMechanism(*p);
    auto full = ComputeDdgRdp(*p, 1.0, kShowOrders);
    auto sampled = ComputeDdgRdp(*p, ref.q, kShowOrders);
    ASSERT_TRUE(full.ok() && sampled.ok());
    for (size_t i = 0; i < kShowOrders.size(); ++i) {
      EXPECT_NEAR(DdgSumRdp(m, kShowOrders[i]), ref.rdp_full[i], 1e-8 * ref.rdp_full[i]);
      EXPECT_NEAR((*full)[i], ref.rdp_full[i], 1e-8 * ref.rdp_full[i]);
      EXPECT_NEAR((*sampled)[i], ref.rdp_sampled[i], 1e-8 * ref.rdp_sampled[i])
          << "order " << kShowOrders[i];
    }
    auto eps = ComputeDdgEpsilon(*p, ref.q, ref.steps, ref.delta, AuthorsOrders());
    ASSERT_TRUE(eps.ok()) << eps.status();
    EXPECT_NEAR(eps->epsilon, ref.epsilon, 1e-8 * ref.epsilon);
    EXPECT_EQ(eps->order, ref.order);
  }
}

// Proposition 14 where tau is not negligible (n_min 10, sigma^2 0.5, d 16, L2 3, L1 6), same
// reference code: tau = 0.10513408906420446 and
//   compute_rdp_dgaussian(q, 6/sqrt(5), 3/sqrt(5), tau, 16, 1, [2, 3, 4, 8, 16, 64])
TEST(DdgReferenceTest, PropositionFourteenWithLargeTauMatchesAuthors) {
  const std::vector<double> orders = {2, 3, 4, 8, 16, 64};
  const std::vector<double> full = {2.5410595546939496, 3.811589332040924, 5.082119109387899,
                                    8.882145425027272,  16.08214542502727, 59.282145425027274};
  const std::vector<double> sampled = {0.028813653074465595, 0.3076152672202922, 1.4708883039589093,
                                       5.615409630789041,    12.959938485821306, 56.25630013584017};
  const DdgSumMechanism m{3.0, 6.0, 0.5, 10, 16};
  RoundMechanism round;
  round.q = 0.05;
  round.ddg = {m};
  auto amplified = ComputeRoundRdp(round, orders);
  ASSERT_TRUE(amplified.ok()) << amplified.status();
  for (size_t i = 0; i < orders.size(); ++i) {
    EXPECT_NEAR(DdgSumRdp(m, orders[i]), full[i], 1e-10 * full[i]) << "order " << orders[i];
    EXPECT_NEAR((*amplified)[i], sampled[i], 1e-8 * sampled[i]) << "order " << orders[i];
  }
  // Fractional orders are charged at the next integer.
  EXPECT_EQ(DdgSumRdp(m, 2.5), DdgSumRdp(m, 3));
}

// pmf of N_Z(0, sigma2) on [-k, k], normalized.
std::vector<long double> DiscreteGaussianPmf(long double sigma2, int k) {
  std::vector<long double> p(2 * k + 1);
  long double total = 0;
  for (int x = -k; x <= k; ++x)
    total += p[x + k] = std::exp(-x * static_cast<long double>(x) / (2 * sigma2));
  for (long double& v : p) v /= total;
  return p;
}

std::vector<long double> Convolve(const std::vector<long double>& a,
                                  const std::vector<long double>& b) {
  std::vector<long double> out(a.size() + b.size() - 1, 0.0L);
  for (size_t i = 0; i < a.size(); ++i) {
    for (size_t j = 0; j < b.size(); ++j) out[i + j] += a[i] * b[j];
  }
  return out;
}

// Exact D_alpha(P || P(. - shift)) for a symmetric pmf P on [-K, K] (index i is x = i - K),
// summing where both are positive (the truncation keeps every term that matters).
long double ExactRenyi(const std::vector<long double>& p, int shift, int alpha) {
  std::vector<long double> logs;
  long double max_log = -INFINITY;
  for (size_t i = shift; i < p.size(); ++i) {
    if (p[i] <= 0 || p[i - shift] <= 0) continue;
    const long double l = alpha * std::log(p[i]) + (1 - alpha) * std::log(p[i - shift]);
    logs.push_back(l);
    max_log = std::max(max_log, l);
  }
  long double sum = 0;
  for (long double l : logs) sum += std::exp(l - max_log);
  return (max_log + std::log(sum)) / (alpha - 1);
}

TEST(DdgExactTest, SingleDiscreteGaussianHarnessIsExact) {
  // With one device tau = 0 and D_alpha(N_Z(0,s2) || N_Z(D,s2)) = alpha D^2 / (2 s2) exactly
  // for integer D: checks the harness as much as DdgSumRdp.
  for (double s2 : {0.3, 1.0, 2.0}) {
    for (int shift : {1, 3}) {
      for (int alpha : {2, 5, 16}) {
        const auto p =
            DiscreteGaussianPmf(s2, static_cast<int>(12 * std::sqrt(s2)) + alpha * shift + 5);
        const double exact = static_cast<double>(ExactRenyi(p, shift, alpha));
        const double bound = DdgSumRdp({double(shift), double(shift), s2, 1, 1}, alpha);
        EXPECT_NEAR(exact, alpha * shift * shift / (2 * s2), 1e-9 * exact);
        EXPECT_NEAR(bound, exact, 1e-9 * exact);
      }
    }
  }
}

TEST(DdgExactTest, OutsideTheTheoremIsChargedInfinity) {
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(DdgSumRdp({1, 1, 0.2, 5, 1}, 2), inf);  // sigma < 1/2
  EXPECT_EQ(DdgSumRdp({1, 1, 0.0, 5, 1}, 2), inf);  // no noise
  EXPECT_EQ(DdgSumRdp({1, 1, 1.0, 0, 1}, 2), inf);  // no device
  EXPECT_EQ(DdgSumRdp({1, 1, 1.0, 5, 1}, 1.0), inf);
  EXPECT_EQ(DdgSumRdp({1, 1, 1.0, 5, 1}, inf), inf);
  EXPECT_TRUE(std::isfinite(DdgSumRdp({1, 1, 0.25, 5, 1}, 2)));
}

TEST(DdgExactTest, PropositionFourteenUpperBoundsTheExactSumDivergence) {
  int tight_cases = 0;
  double worst_tight_ratio = 1;
  for (double s2 : {0.25, 0.3, 0.5, 1.0, 2.0}) {
    for (int n : {2, 3, 5, 10}) {
      for (int shift : {1, 2, 3}) {
        for (int alpha : {2, 3, 5, 10, 16}) {
          const int k = static_cast<int>(12 * std::sqrt(s2)) + alpha * shift + 5;
          const auto one = DiscreteGaussianPmf(s2, k);
          std::vector<long double> sum = one;
          for (int i = 1; i < n; ++i) sum = Convolve(sum, one);
          const double exact = static_cast<double>(ExactRenyi(sum, shift, alpha));
          const DdgSumMechanism m{double(shift), double(shift), s2, n, 1};
          const double bound = DdgSumRdp(m, alpha);
          SCOPED_TRACE(testing::Message() << "sigma2 " << s2 << " n " << n << " shift " << shift
                                          << " alpha " << alpha);
          EXPECT_GE(bound, exact * (1 - 1e-12));
          double tau = 0;
          for (int j = 1; j < n; ++j) tau += 10 * std::exp(-2 * M_PI * M_PI * s2 * j / (j + 1.0));
          if (tau < 1e-3) {  // the sum is essentially N_Z(0, n s2): the bound is nearly tight
            EXPECT_LE(bound, exact * 1.03);
            worst_tight_ratio = std::max(worst_tight_ratio, bound / exact);
            ++tight_cases;
          }
        }
      }
    }
  }
  EXPECT_GT(tight_cases, 50);
  RecordProperty("worst_bound_over_exact_where_tau_small", std::to_string(worst_tight_ratio));
}

TEST(DdgPoissonTest, AmplificationBoundIsValidAndNearTheTightGaussian) {
  std::vector<double> orders;
  for (int a = 2; a <= 64; ++a) orders.push_back(a);
  orders.push_back(128);
  orders.push_back(256);
  for (double q : {0.001, 0.01, 0.1}) {
    for (double z : {0.8, 1.0, 2.0, 5.0}) {
      SCOPED_TRACE(testing::Message() << "q " << q << " z " << z);
      auto tight = ComputeRdpPoissonGaussian(q, z, orders);
      ASSERT_TRUE(tight.ok());
      const IntegerRdpFn eps = [z](int a) { return a / (2 * z * z); };
      std::vector<double> general(orders.size());
      double worst = 1;
      for (size_t i = 0; i < orders.size(); ++i) {
        general[i] = PoissonSubsampledRdp(static_cast<int>(orders[i]), q, eps);
        // Both sides cancel 1 - x + x e^eps in floating point when the RDP is ~1e-8.
        EXPECT_GE(general[i], (*tight)[i] * (1 - 1e-7)) << "order " << orders[i];
        worst = std::max(worst, general[i] / (*tight)[i]);
      }
      // Theorem 5 multiplies the j >= 3 terms of the exact binomial expansion by 3 (not only
      // their excess over the binomial weight), so where the per-order RDP is tiny (z = 5) the
      // ratio grows. Measured: worst per-order ratio 2.90 for z <= 2, 9.05 at z = 5; epsilon
      // after 1000 rounds at most 1.17x the tight one for z <= 1 (q 0.01, z 0.8: 4.371 vs
      // 3.725), up to 2.30x at z = 5 (q 0.1: 6.541 vs 2.884). This is the price of the general
      // bound the DDG accounting (and the authors' code) uses.
      EXPECT_LE(worst, z <= 2 ? 3.0 : 10.0);
      for (double& r : general) r *= 1000;
      for (double& r : *tight) r *= 1000;
      const double e_general = RdpToEpsilon(orders, general, 1e-5)->epsilon;
      const double e_tight = RdpToEpsilon(orders, *tight, 1e-5)->epsilon;
      EXPECT_GE(e_general, e_tight * (1 - 1e-9));
      EXPECT_LE(e_general, e_tight * (z <= 1 ? 1.2 : 2.5));
    }
  }
}

}  // namespace
}  // namespace fedlora::privacy
