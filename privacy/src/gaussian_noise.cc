#include "fedlora/privacy/gaussian_noise.h"

#include <cmath>

#include "absl/strings/str_format.h"
#include "fedlora/common/random.h"
#include "fedlora/common/status_macros.h"

namespace fedlora::privacy {
namespace {

absl::Status CheckNoise(double noise_multiplier) {
  if (!(noise_multiplier >= 0) || !std::isfinite(noise_multiplier)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: noise multiplier must be >= 0 and finite, got %g", noise_multiplier));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status AddGaussianNoise(float* data, size_t n, double stddev, RandomSource& rng) {
  if (!(stddev >= 0) || !std::isfinite(stddev)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: noise stddev must be >= 0 and finite, got %g", stddev));
  }
  if (stddev == 0) return absl::OkStatus();
  for (size_t i = 0; i < n; ++i) {
    data[i] = static_cast<float>(data[i] + stddev * rng.StandardNormal());
  }
  return absl::OkStatus();
}

absl::StatusOr<ClipResult> ClipAndAddLocalNoise(std::vector<float>& delta, double clip,
                                                double noise_multiplier, RandomSource& rng) {
  FEDLORA_RETURN_IF_ERROR(CheckNoise(noise_multiplier));
  FEDLORA_ASSIGN_OR_RETURN(ClipResult r, ClipL2InPlace(delta, clip));
  FEDLORA_RETURN_IF_ERROR(
      AddGaussianNoise(delta.data(), delta.size(), noise_multiplier * clip, rng));
  return r;
}

absl::StatusOr<CentralDpAggregator> CentralDpAggregator::Create(size_t dim, double clip,
                                                                double noise_multiplier) {
  if (dim == 0) return absl::InvalidArgumentError("privacy: aggregator dimension must be > 0");
  if (!(clip > 0) || !std::isfinite(clip)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: clip bound must be positive and finite, got %g", clip));
  }
  FEDLORA_RETURN_IF_ERROR(CheckNoise(noise_multiplier));
  return CentralDpAggregator(dim, clip, noise_multiplier);
}

absl::StatusOr<ClipResult> CentralDpAggregator::Add(const float* delta, size_t n) {
  if (n != sum_.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: delta has %d entries, aggregator expects %d (hint: adapter shapes differ "
        "between device and server)",
        n, sum_.size()));
  }
  std::vector<float> copy(delta, delta + n);
  FEDLORA_ASSIGN_OR_RETURN(ClipResult r, ClipL2InPlace(copy, clip_));
  for (size_t i = 0; i < n; ++i) sum_[i] += copy[i];
  ++num_added_;
  return r;
}

std::vector<float> CentralDpAggregator::Release(RandomSource& rng) const {
  std::vector<float> out(sum_.size());
  const double stddev = noise_stddev();
  for (size_t i = 0; i < sum_.size(); ++i) {
    out[i] = static_cast<float>(sum_[i] + (stddev > 0 ? stddev * rng.StandardNormal() : 0.0));
  }
  return out;
}

}  // namespace fedlora::privacy
