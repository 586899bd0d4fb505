#include "fedlora/privacy/clipping.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fedlora/common/random.h"

namespace fedlora::privacy {

absl::Status CheckFinite(const float* data, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(data[i])) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "privacy: delta entry %d is %g, not finite (hint: the device's local training "
          "diverged; drop its update for this round)",
          i, data[i]));
    }
  }
  return absl::OkStatus();
}

double L2Norm(const float* data, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += static_cast<double>(data[i]) * data[i];
  return std::sqrt(sum);
}

absl::StatusOr<ClipResult> ClipL2InPlace(float* data, size_t n, double bound) {
  if (!(bound > 0) || !std::isfinite(bound)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: clip bound must be positive and finite, got %g", bound));
  }
  if (auto s = CheckFinite(data, n); !s.ok()) return s;
  ClipResult r;
  r.norm = L2Norm(data, n);
  if (r.norm > bound) {
    r.clipped = true;
    r.scale = bound / r.norm;
    // Float rounding could leave the norm a hair above the bound; shrink by one ulp-ish margin.
    const float s = static_cast<float>(r.scale * (1 - 1e-6));
    for (size_t i = 0; i < n; ++i) data[i] *= s;
    r.scale = s;
  }
  return r;
}

absl::StatusOr<ClipResult> ClipL2InPlace(std::vector<float>& data, double bound) {
  return ClipL2InPlace(data.data(), data.size(), bound);
}

absl::StatusOr<AdaptiveClipNoise> AdaptiveClipNoiseParams(
    double noise_multiplier, double expected_clients_per_round,
    std::optional<double> clipped_count_stddev) {
  if (!(noise_multiplier >= 0) || !std::isfinite(noise_multiplier)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: noise multiplier must be >= 0 and finite, got %g", noise_multiplier));
  }
  if (!(expected_clients_per_round > 0)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: expected clients per round must be positive, got %g",
                        expected_clients_per_round));
  }
  AdaptiveClipNoise out;
  if (noise_multiplier == 0) return out;
  const double s = clipped_count_stddev.value_or(0.05 * expected_clients_per_round);
  if (!(s >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: clipped_count_stddev must be >= 0, got %g", s));
  }
  if (noise_multiplier >= 2 * s) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: clipped_count_stddev = %g (default 0.05 * expected clients per round) is too "
        "low for noise multiplier %g: the value noise multiplier (z^-2 - (2s)^-2)^-1/2 is not "
        "positive (hint: raise clipped_count_stddev above z/2 or lower the noise multiplier)",
        s, noise_multiplier));
  }
  out.clipped_count_stddev = s;
  out.value_noise_multiplier = std::pow(std::pow(noise_multiplier, -2) - std::pow(2 * s, -2), -0.5);
  return out;
}

absl::StatusOr<AdaptiveClipper> AdaptiveClipper::Create(const AdaptiveClipConfig& c) {
  auto positive = [](double x) { return x > 0 && std::isfinite(x); };
  if (!positive(c.initial_clip) || !positive(c.learning_rate) || !positive(c.expected_clients)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: adaptive clipping needs positive initial_clip (%g), learning_rate (%g) and "
        "expected_clients (%g)",
        c.initial_clip, c.learning_rate, c.expected_clients));
  }
  if (!(c.target_quantile >= 0 && c.target_quantile <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: target quantile must be in [0, 1], got %g", c.target_quantile));
  }
  if (!(c.clipped_count_stddev >= 0) || !std::isfinite(c.clipped_count_stddev)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: clipped_count_stddev must be >= 0, got %g", c.clipped_count_stddev));
  }
  return AdaptiveClipper(c);
}

uint32_t AdaptiveClipper::ClipBit(double norm, double clip) { return norm <= clip ? 1u : 0u; }

absl::StatusOr<double> AdaptiveClipper::Update(uint64_t below_count, uint64_t num_reported,
                                               RandomSource& rng) {
  if (below_count > num_reported) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: summed clip bits %d exceed the %d devices that reported (hint: the bit sum "
        "wrapped or mixes rounds)",
        below_count, num_reported));
  }
  double centered = static_cast<double>(below_count) - 0.5 * static_cast<double>(num_reported);
  if (config_.clipped_count_stddev > 0) {
    centered += config_.clipped_count_stddev * rng.StandardNormal();
  }
  return UpdateFromNoisySum(centered);
}

absl::StatusOr<double> AdaptiveClipper::UpdateFromNoisySum(double noisy_centered_sum) {
  if (!std::isfinite(noisy_centered_sum)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: noisy clipped-count sum is %g (hint: a bad aggregate is "
                        "discarded; the clip is left unchanged)",
                        noisy_centered_sum));
  }
  const double b_avg = std::clamp(noisy_centered_sum / config_.expected_clients + 0.5, 0.0, 1.0);
  clip_ *= std::exp(-config_.learning_rate * (b_avg - config_.target_quantile));
  return clip_;
}

absl::Status AdaptiveClipper::RestoreClip(double clip) {
  if (!(clip > 0) || !std::isfinite(clip)) {
    return absl::InvalidArgumentError(absl::StrCat("adaptive clip: cannot restore clip ", clip));
  }
  clip_ = clip;
  return absl::OkStatus();
}

}  // namespace fedlora::privacy
