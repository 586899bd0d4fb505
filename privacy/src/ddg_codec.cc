#include "fedlora/privacy/ddg_codec.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"
#include "fedlora/common/random.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/privacy/clipping.h"
#include "fedlora/privacy/hadamard.h"

namespace fedlora::privacy {
namespace {

// sqrt(2) * erfcinv(p) for p in (0, 1), by bisection on erfc.
double ClipProbToStddevs(double p) {
  double lo = 0, hi = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (std::erfc(mid) > p ? lo : hi) = mid;
  }
  return std::sqrt(2.0) * 0.5 * (lo + hi);
}

constexpr int kMaxRoundingTries = 1000;

}  // namespace

double RoundedL2NormBound(double l2, double beta, double dim) {
  const double bound1 = l2 + std::sqrt(dim);
  if (beta <= 0) return bound1;
  const double sq =
      l2 * l2 + 0.25 * dim + std::sqrt(2.0 * std::log(1.0 / beta)) * (l2 + 0.5 * std::sqrt(dim));
  return std::min(bound1, std::sqrt(sq));
}

absl::StatusOr<DdgParams> ChooseDdgParams(const DdgConfig& c) {
  if (c.dim == 0) return absl::InvalidArgumentError("privacy: DDG dim must be > 0");
  if (c.expected_clients <= 0 || c.min_clients < 0 || c.min_clients > c.expected_clients) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: DDG needs expected_clients > 0 and 0 <= min_clients <= expected_clients, got "
        "%d and %d",
        c.expected_clients, c.min_clients));
  }
  if (!(c.l2_clip > 0) || !std::isfinite(c.l2_clip)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: DDG l2_clip must be positive and finite, got %g", c.l2_clip));
  }
  if (!(c.noise_multiplier >= 0) || !std::isfinite(c.noise_multiplier)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: DDG noise multiplier must be >= 0 and finite, got %g", c.noise_multiplier));
  }
  if (c.bits < 1 || c.bits > 32) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: DDG bits must be in [1, 32], got %d", c.bits));
  }
  if (!(c.modclip_prob > 0 && c.modclip_prob < 1)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: DDG modclip_prob must be in (0, 1), got %g", c.modclip_prob));
  }
  if (!(c.beta >= 0 && c.beta < 1)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: DDG beta must be in [0, 1), got %g", c.beta));
  }
  if (!(c.max_scale > 0)) return absl::InvalidArgumentError("privacy: DDG max_scale must be > 0");

  DdgParams p;
  p.config = c;
  const double n = c.expected_clients;
  const int n_min = c.min_clients > 0 ? c.min_clients : c.expected_clients;
  p.padded_dim = PaddedDim(c.dim);
  p.k_stddevs = ClipProbToStddevs(c.modclip_prob);
  const double two_b = std::ldexp(1.0, c.bits);
  if (c.bits < std::log2(n)) {
    return absl::OutOfRangeError(absl::StrFormat(
        "privacy: 2^%d overflows: it cannot hold the sum of %d devices (hint: use bits >= "
        "log2(devices))",
        c.bits, c.expected_clients));
  }
  const double headroom = two_b * two_b - n * p.k_stddevs * p.k_stddevs;
  if (headroom <= 0) {
    return absl::OutOfRangeError(absl::StrFormat(
        "privacy: 2^%d overflows: %d devices at modular-clip probability %g need 2^(2b) > n k^2 "
        "= %g (hint: increase bits, decrease devices per round, or raise modclip_prob)",
        c.bits, c.expected_clients, c.modclip_prob, n * p.k_stddevs * p.k_stddevs));
  }
  p.local_stddev = c.noise_multiplier * c.l2_clip / std::sqrt(static_cast<double>(n_min));
  const double dim = static_cast<double>(p.padded_dim);
  // 2^b = 2k sqrt(C^2 n^2 / D + (gamma^2/4 + sigma^2) n) / gamma, solved for 1/gamma.
  const double denom =
      2.0 * p.k_stddevs *
      std::sqrt(c.l2_clip * c.l2_clip * n * n / dim + n * p.local_stddev * p.local_stddev);
  p.scale = std::min(std::sqrt(headroom) / denom, c.max_scale);
  if (!(p.scale > 0) || !std::isfinite(p.scale)) {
    return absl::OutOfRangeError("privacy: DDG scale factor is not positive");
  }
  p.gamma = 1.0 / p.scale;
  p.local_sigma2_scaled = std::pow(p.local_stddev * p.scale, 2);
  p.scaled_l2_bound = RoundedL2NormBound(c.l2_clip * p.scale, c.beta, dim);
  return p;
}

absl::StatusOr<DdgCodec> DdgCodec::Create(const DdgConfig& config) {
  FEDLORA_ASSIGN_OR_RETURN(DdgParams params, ChooseDdgParams(config));
  // With z == 0 no noise is added; the sampler still needs a valid variance.
  const double s2 = params.local_sigma2_scaled > 0 ? params.local_sigma2_scaled : 1.0;
  FEDLORA_ASSIGN_OR_RETURN(DiscreteGaussianSampler sampler, DiscreteGaussianSampler::Create(s2));
  return DdgCodec(params, sampler);
}

absl::StatusOr<DdgEncodeStats> DdgCodec::Encode(const float* delta, size_t n, uint64_t round_seed,
                                                RandomSource& rng,
                                                std::vector<uint32_t>* out) const {
  const DdgConfig& c = params_.config;
  if (n != c.dim) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: delta has %d entries, DDG codec expects %d (hint: adapter shapes differ)", n,
        c.dim));
  }
  FEDLORA_RETURN_IF_ERROR(CheckFinite(delta, n));
  DdgEncodeStats stats;
  stats.norm = L2Norm(delta, n);
  stats.clipped = stats.norm > c.l2_clip;
  // Rotate the unclipped vector and clip afterwards: rotation is orthonormal, so scaling the
  // rotated vector is the same as rotating the clipped one, and saves a pass.
  std::vector<double> x;
  RotateForward(delta, n, round_seed, &x);
  const double clip_scale = stats.clipped ? c.l2_clip / stats.norm : 1.0;
  const double s = params_.scale * clip_scale;
  std::vector<double> frac(x.size());
  std::vector<int64_t> rounded(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i] * s;
    const double f = std::floor(v);
    x[i] = f;
    frac[i] = v - f;
  }
  const double bound_sq = params_.scaled_l2_bound * params_.scaled_l2_bound;
  for (;;) {
    ++stats.rounding_tries;
    double norm_sq = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const int64_t r = static_cast<int64_t>(x[i]) + (rng.UniformDouble() < frac[i] ? 1 : 0);
      rounded[i] = r;
      norm_sq += static_cast<double>(r) * static_cast<double>(r);
    }
    if (norm_sq <= bound_sq) break;
    if (stats.rounding_tries >= kMaxRoundingTries) {
      return absl::InternalError(absl::StrFormat(
          "privacy: conditional randomized rounding failed %d times (hint: set DdgConfig.beta "
          "to 0 for unconditional rounding)",
          kMaxRoundingTries));
    }
  }
  const uint64_t mask = (1ull << c.bits) - 1;
  const bool noisy = params_.local_sigma2_scaled > 0;
  out->resize(rounded.size());
  for (size_t i = 0; i < rounded.size(); ++i) {
    const int64_t v = rounded[i] + (noisy ? sampler_.Sample(rng) : 0);
    (*out)[i] = static_cast<uint32_t>(static_cast<uint64_t>(v) & mask);
  }
  return stats;
}

absl::StatusOr<std::vector<float>> DdgCodec::Decode(const std::vector<uint32_t>& sum,
                                                    uint64_t round_seed) const {
  const DdgConfig& c = params_.config;
  if (sum.size() < params_.padded_dim) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: aggregated vector has %d entries, expected at least %d (the padded dim)",
        sum.size(), params_.padded_dim));
  }
  const uint64_t modulus = 1ull << c.bits;
  const int64_t half = static_cast<int64_t>(modulus / 2);
  std::vector<double> y(params_.padded_dim);
  for (size_t i = 0; i < y.size(); ++i) {
    if (sum[i] >= modulus) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "privacy: aggregated entry %d is %d, not in Z_2^%d (hint: secure aggregation must sum "
          "mod 2^bits)",
          i, sum[i], c.bits));
    }
    int64_t v = static_cast<int64_t>(sum[i]);
    if (v >= half) v -= static_cast<int64_t>(modulus);
    y[i] = static_cast<double>(v) * params_.gamma;
  }
  std::vector<float> out;
  RotateInverse(y, c.dim, round_seed, &out);
  return out;
}

double DdgCodec::PredictedErrorStddev(int num_devices) const {
  // Per device: discrete Gaussian variance + randomized rounding variance (<= 1/4), scaled.
  const double noise =
      params_.local_sigma2_scaled > 0 ? DiscreteGaussianVariance(params_.local_sigma2_scaled) : 0.0;
  return std::sqrt(num_devices * (noise + 0.25)) * params_.gamma;
}

}  // namespace fedlora::privacy
