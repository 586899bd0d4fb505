#include "fedlora/privacy/discrete_gaussian.h"

#include <cmath>

#include "absl/strings/str_format.h"
#include "fedlora/common/random.h"

namespace fedlora::privacy {
namespace {

using u128 = unsigned __int128;

// Uniform integer in [0, bound), bound >= 1, up to 2^127.
u128 UniformBelow128(RandomSource& rng, u128 bound) {
  if ((bound >> 64) == 0) return rng.Uniform(static_cast<uint64_t>(bound));
  int bits = 64;
  while (bits < 128 && (bound >> bits) != 0) ++bits;
  const u128 mask = bits == 128 ? ~static_cast<u128>(0) : ((static_cast<u128>(1) << bits) - 1);
  for (;;) {
    const u128 r = ((static_cast<u128>(rng.NextU64()) << 64) | rng.NextU64()) & mask;
    if (r < bound) return r;
  }
}

// Bernoulli(n / d), 0 <= n <= d, d >= 1.
bool BernoulliRational(RandomSource& rng, u128 n, u128 d) { return UniformBelow128(rng, d) < n; }

// Bernoulli(exp(-n/d)) for 0 <= n/d <= 1 (CKS Algorithm 1, first case):
// K = 1; while Bernoulli(gamma / K): K++; return K odd.
// Bernoulli(n / (d K)) is drawn as Bernoulli(n / d) AND Bernoulli(1 / K), which is exact and
// avoids overflowing d * K.
bool BernoulliExpNegSmall(RandomSource& rng, u128 n, u128 d) {
  uint64_t k = 1;
  for (;;) {
    if (!BernoulliRational(rng, n, d)) break;
    if (rng.Uniform(k) != 0) break;
    ++k;
  }
  return (k & 1) == 1;
}

// Bernoulli(exp(-1)).
bool BernoulliExpNegOne(RandomSource& rng) { return BernoulliExpNegSmall(rng, 1, 1); }

// Bernoulli(exp(-n/d)) for any n/d >= 0 (CKS Algorithm 1): floor(gamma) draws of
// Bernoulli(exp(-1)), then Bernoulli(exp(-frac(gamma))).
bool BernoulliExpNeg(RandomSource& rng, u128 n, u128 d) {
  u128 whole = n / d;
  const u128 rem = n % d;
  for (; whole > 0; --whole) {
    if (!BernoulliExpNegOne(rng)) return false;
  }
  return BernoulliExpNegSmall(rng, rem, d);
}

uint64_t ISqrt(uint64_t x) {
  uint64_t r = static_cast<uint64_t>(std::sqrt(static_cast<double>(x)));
  while (r > 0 && static_cast<u128>(r) * r > x) --r;
  while (static_cast<u128>(r + 1) * (r + 1) <= x) ++r;
  return r;
}

constexpr double kMinSigma2 = 0x1p-20;
constexpr double kMaxSigma2 = 0x1p56;

}  // namespace

DiscreteGaussianSampler::DiscreteGaussianSampler(uint64_t num, uint64_t den)
    : num_(num), den_(den) {
  t_ = ISqrt(num / den) + 1;  // floor(sqrt(p/q)) + 1
  accept_den_ = static_cast<u128>(2) * num_ * den_ * t_ * t_;
  const u128 qt = static_cast<u128>(den_) * t_;
  z_limit_ = static_cast<uint64_t>((static_cast<u128>(1) << 63) / qt);
}

absl::StatusOr<DiscreteGaussianSampler> DiscreteGaussianSampler::Create(double sigma2) {
  if (!(sigma2 >= kMinSigma2 && sigma2 <= kMaxSigma2)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: discrete Gaussian variance %g outside the supported [2^-20, 2^56] (hint: "
        "check the scale factor and local noise of the DDG configuration)",
        sigma2));
  }
  int e;
  std::frexp(sigma2, &e);  // sigma2 = m * 2^e, m in [0.5, 1)
  int s = 48 - e;          // p = sigma2 * 2^s has 48 significant bits
  if (s < 0) s = 0;
  if (s > 56) s = 56;
  const double p = std::nearbyint(std::ldexp(sigma2, s));
  return CreateRational(static_cast<uint64_t>(p), static_cast<uint64_t>(1) << s);
}

absl::StatusOr<DiscreteGaussianSampler> DiscreteGaussianSampler::CreateRational(uint64_t num,
                                                                                uint64_t den) {
  if (num == 0 || den == 0 || num >= (1ull << 57) || den > (1ull << 56)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: discrete Gaussian variance %d/%d is not representable (need 0 < num < 2^57, "
        "0 < den <= 2^56)",
        num, den));
  }
  const double v = static_cast<double>(num) / static_cast<double>(den);
  if (!(v >= kMinSigma2 * 0.999 && v <= kMaxSigma2)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: discrete Gaussian variance %g outside [2^-20, 2^56]", v));
  }
  return DiscreteGaussianSampler(num, den);
}

int64_t DiscreteGaussianSampler::Sample(RandomSource& rng) const {
  for (;;) {
    const uint64_t u = rng.Uniform(t_);
    if (!BernoulliExpNeg(rng, u, t_)) continue;
    uint64_t v = 0;
    while (BernoulliExpNegOne(rng)) ++v;
    const uint64_t x = u + t_ * v;  // discrete Laplace magnitude with scale t
    const bool negative = (rng.NextU64() & 1) != 0;
    if (negative && x == 0) continue;
    if (x > z_limit_) continue;  // acceptance probability < exp(-1900); see header
    // Accept with probability exp(-(|Z| - sigma^2/t)^2 / (2 sigma^2))
    //   = exp(-(|Z| q t - p)^2 / (2 p q t^2)).
    const __int128 diff = static_cast<__int128>(x) * den_ * t_ - static_cast<__int128>(num_);
    const u128 mag = static_cast<u128>(diff < 0 ? -diff : diff);
    if (BernoulliExpNeg(rng, mag * mag, accept_den_)) {
      return negative ? -static_cast<int64_t>(x) : static_cast<int64_t>(x);
    }
  }
}

double DiscreteGaussianVariance(double sigma2) {
  const double sigma = std::sqrt(sigma2);
  const int64_t limit = static_cast<int64_t>(40 * sigma) + 40;
  double num = 0, den = 1;  // k = 0 contributes 1 to the normalizer
  for (int64_t k = 1; k <= limit; ++k) {
    const double w = std::exp(-static_cast<double>(k) * k / (2 * sigma2));
    num += 2 * static_cast<double>(k) * k * w;
    den += 2 * w;
  }
  return num / den;
}

}  // namespace fedlora::privacy
