// Exact sampler for the discrete Gaussian N_Z(0, sigma^2): P(x) proportional to
// exp(-x^2 / (2 sigma^2)) over the integers (Canonne, Kamath, Steinke 2020, Algorithm 3).
//
// Exactness: sigma^2 is held as a rational p/q (integers). Every Bernoulli draw, including
// Bernoulli(exp(-gamma)) for rational gamma (CKS Algorithms 1-2), is decided with uniform
// integers and 128-bit integer arithmetic, never with floating point; the sampler is exact
// for p/q. Create(double) rounds sigma^2 to a dyadic rational with 48 significant bits
// (relative change < 2^-48). One documented deviation: a candidate |Z| so large that the
// 128-bit products would overflow (|Z| > max(128, 2^15 sigma)) is rejected; its acceptance
// probability is below exp(-8000), far under any double-precision effect.
#ifndef FEDLORA_PRIVACY_DISCRETE_GAUSSIAN_H_
#define FEDLORA_PRIVACY_DISCRETE_GAUSSIAN_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "fedlora/common/random.h"

namespace fedlora::privacy {

class DiscreteGaussianSampler {
 public:
  // sigma^2 = sigma2 rounded to p / 2^s. Fails with INVALID_ARGUMENT unless
  // 2^-20 <= sigma2 <= 2^56 and finite.
  static absl::StatusOr<DiscreteGaussianSampler> Create(double sigma2);

  // sigma^2 = num / den exactly. Fails with INVALID_ARGUMENT if num or den is 0 or the value is
  // outside the range Create accepts, or num >= 2^57 or den > 2^56.
  static absl::StatusOr<DiscreteGaussianSampler> CreateRational(uint64_t num, uint64_t den);

  // One draw. Thread-compatible (const; the generator carries all state).
  int64_t Sample(RandomSource& rng) const;

  // sigma^2 as used (p/q), as a double.
  double sigma2() const { return static_cast<double>(num_) / static_cast<double>(den_); }

 private:
  DiscreteGaussianSampler(uint64_t num, uint64_t den);
  uint64_t num_;                  // p
  uint64_t den_;                  // q
  uint64_t t_;                    // floor(sigma) + 1
  unsigned __int128 accept_den_;  // 2 p q t^2
  uint64_t z_limit_;              // |Z| above which |Z| q t would overflow 2^63
};

// Exact variance of N_Z(0, sigma2) (slightly below sigma2), summed numerically; for tests and
// for predicting the spread of decoded sums.
double DiscreteGaussianVariance(double sigma2);

}  // namespace fedlora::privacy

#endif  // FEDLORA_PRIVACY_DISCRETE_GAUSSIAN_H_
