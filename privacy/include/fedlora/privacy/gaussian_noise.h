// Continuous Gaussian mechanisms: central DP (trusted aggregator adds noise to the sum of
// clipped deltas) and local DP (each device noises its own clipped delta).
//
// Noise is drawn with a portable polar method from the injected RandomSource (SecureRandom on
// real devices and coordinators; a seeded source reproduces results on any platform). These are
// floating-point samplers (not exact); use the distributed discrete Gaussian (ddg_codec.h) when
// noise must survive secure aggregation.
#ifndef FEDLORA_PRIVACY_GAUSSIAN_NOISE_H_
#define FEDLORA_PRIVACY_GAUSSIAN_NOISE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedlora/common/random.h"
#include "fedlora/privacy/clipping.h"

namespace fedlora::privacy {

// Adds i.i.d. N(0, stddev^2) to data[0, n) in place. stddev == 0 is a no-op.
// Fails with INVALID_ARGUMENT if stddev is negative or not finite.
absl::Status AddGaussianNoise(float* data, size_t n, double stddev, RandomSource& rng);

// Local DP on a device: validates, clips `delta` to `clip` and adds N(0, (z * clip)^2) per
// entry. Fails with INVALID_ARGUMENT (delta unchanged) on a non-finite entry, bad clip or
// negative noise multiplier.
absl::StatusOr<ClipResult> ClipAndAddLocalNoise(std::vector<float>& delta, double clip,
                                                double noise_multiplier, RandomSource& rng);

// Central DP (trusted aggregator): sums clipped deltas in double precision, then releases
// sum + N(0, (z * clip)^2) per coordinate. A delta with NaN/Inf is rejected and never reaches the
// sum. Not thread-safe.
class CentralDpAggregator {
 public:
  // Fails with INVALID_ARGUMENT for dim == 0, clip <= 0 or noise_multiplier < 0.
  static absl::StatusOr<CentralDpAggregator> Create(size_t dim, double clip,
                                                    double noise_multiplier);

  // Validates and clips one device's delta (copied; the input is not modified) and adds it.
  // Fails with INVALID_ARGUMENT on a size mismatch or non-finite entry; the sum is unchanged.
  absl::StatusOr<ClipResult> Add(const float* delta, size_t n);
  absl::StatusOr<ClipResult> Add(const std::vector<float>& delta) {
    return Add(delta.data(), delta.size());
  }

  // Number of deltas accepted so far.
  int64_t num_added() const { return num_added_; }
  // Stddev of the noise Release() adds: noise_multiplier * clip.
  double noise_stddev() const { return noise_multiplier_ * clip_; }

  // The noisy sum (divide by the expected cohort size for a mean). Does not reset the state.
  std::vector<float> Release(RandomSource& rng) const;

 private:
  CentralDpAggregator(size_t dim, double clip, double noise_multiplier)
      : clip_(clip), noise_multiplier_(noise_multiplier), sum_(dim, 0.0) {}
  double clip_;
  double noise_multiplier_;
  std::vector<double> sum_;
  int64_t num_added_ = 0;
};

}  // namespace fedlora::privacy

#endif  // FEDLORA_PRIVACY_GAUSSIAN_NOISE_H_
