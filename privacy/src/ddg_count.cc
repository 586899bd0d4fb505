#include "fedlora/privacy/ddg_count.h"

#include <cmath>

#include "absl/strings/str_format.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/privacy/discrete_gaussian.h"

namespace fedlora::privacy {

absl::StatusOr<CountDdgParams> ChooseCountDdgParams(double count_stddev, int expected_clients,
                                                    int min_clients, int bits) {
  if (!(count_stddev > 0) || !std::isfinite(count_stddev)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: clipped-count stddev must be > 0, got %g (hint: adaptive clipping with DP "
        "needs noise on the count)",
        count_stddev));
  }
  if (expected_clients < 1 || min_clients < 1 || min_clients > expected_clients) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: count needs 1 <= min_clients (%d) <= expected_clients (%d)",
                        min_clients, expected_clients));
  }
  if (bits < 2 || bits > 32) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: bits must be in [2, 32], got %d", bits));
  }
  const double n = expected_clients, m = min_clients;
  const double half = std::ldexp(1.0, bits - 1);
  // Noise of n devices, relative to S: stddev s * sqrt(n / m).
  const double per_scale = n / 2 + 6 * count_stddev * std::sqrt(n / m);
  int64_t scale = 256;
  while (scale >= 2 && scale * per_scale >= half) scale /= 2;
  if (scale < 2) {
    return absl::OutOfRangeError(absl::StrFormat(
        "privacy: the clipped count of %d devices with noise stddev %g does not fit in %d bits "
        "(hint: raise privacy.bits)",
        expected_clients, count_stddev, bits));
  }
  CountDdgParams p;
  p.scale = scale;
  p.count_stddev = count_stddev;
  p.local_sigma2 = std::pow(scale * count_stddev, 2) / m;
  p.min_clients = min_clients;
  p.expected_clients = expected_clients;
  p.bits = bits;
  return p;
}

absl::StatusOr<uint32_t> EncodeCount(uint32_t bit, const CountDdgParams& params,
                                     RandomSource& rng) {
  if (bit > 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: clip bit must be 0 or 1, got %d", bit));
  }
  FEDLORA_ASSIGN_OR_RETURN(DiscreteGaussianSampler sampler,
                           DiscreteGaussianSampler::Create(params.local_sigma2));
  const int64_t half_scale = params.scale / 2;
  const int64_t v = (bit ? half_scale : -half_scale) + sampler.Sample(rng);
  const uint64_t mask = params.bits == 64 ? ~0ULL : ((1ULL << params.bits) - 1);
  return static_cast<uint32_t>(static_cast<uint64_t>(v) & mask);
}

double DecodeCount(uint32_t summed, const CountDdgParams& params) {
  const int64_t modulus = int64_t{1} << params.bits;
  int64_t v = static_cast<int64_t>(summed) & (modulus - 1);
  if (v >= modulus / 2) v -= modulus;
  return static_cast<double>(v) / static_cast<double>(params.scale);
}

DdgSumMechanism CountMechanism(const CountDdgParams& params) {
  DdgSumMechanism m;
  m.l2_sensitivity = static_cast<double>(params.scale) / 2;
  m.l1_sensitivity = m.l2_sensitivity;
  m.local_sigma2 = params.local_sigma2;
  m.n_min = params.min_clients;
  m.dim = 1;
  return m;
}

}  // namespace fedlora::privacy
