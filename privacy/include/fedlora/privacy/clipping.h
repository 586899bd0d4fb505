// L2 clipping of a flat adapter delta: fixed bound, and adaptive clipping (Andrew et al. 2021,
// "Differentially Private Learning with Adaptive Clipping", geometric update) whose
// per-device bit is aggregated through secure aggregation.
#ifndef FEDLORA_PRIVACY_CLIPPING_H_
#define FEDLORA_PRIVACY_CLIPPING_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedlora/common/random.h"

namespace fedlora::privacy {

// OK iff every entry of data[0, n) is finite. Otherwise INVALID_ARGUMENT naming the first bad
// index and value (hint: drop the device's update for this round).
absl::Status CheckFinite(const float* data, size_t n);

// L2 norm accumulated in double (no validation: NaN in, NaN out).
double L2Norm(const float* data, size_t n);

// What clipping did to one delta.
struct ClipResult {
  double norm = 0;       // L2 norm before clipping
  double scale = 1;      // factor applied: min(1, bound / norm)
  bool clipped = false;  // true iff norm > bound (scale < 1)
};

// Scales data[0, n) in place so its L2 norm is <= bound. Validates first, so NaN/Inf never
// propagate: INVALID_ARGUMENT (data unchanged) for a non-finite entry or bound <= 0 / non-finite.
absl::StatusOr<ClipResult> ClipL2InPlace(float* data, size_t n, double bound);
absl::StatusOr<ClipResult> ClipL2InPlace(std::vector<float>& data, double bound);

// Noise split of a total noise multiplier between the clipped values and the clipped-count
// query (TensorFlow Federated `adaptive_clip_noise_params`).
struct AdaptiveClipNoise {
  double value_noise_multiplier = 0;  // (z^-2 - (2 s)^-2)^(-1/2), 0 when z == 0
  double clipped_count_stddev = 0;    // s; default 0.05 * expected devices (0 when z == 0)
};

// Returns the split for total noise multiplier `noise_multiplier` >= 0 and
// `expected_clients_per_round` > 0; `clipped_count_stddev` defaults to 0.05 * expected clients.
// Fails with INVALID_ARGUMENT if z >= 2 s (the value noise multiplier would not be positive),
// with the hint to raise clipped_count_stddev or lower the noise multiplier.
absl::StatusOr<AdaptiveClipNoise> AdaptiveClipNoiseParams(
    double noise_multiplier, double expected_clients_per_round,
    std::optional<double> clipped_count_stddev = std::nullopt);

// Parameters of adaptive clipping; defaults are TensorFlow Federated's.
struct AdaptiveClipConfig {
  double initial_clip = 0.1;        // C_0 > 0
  double target_quantile = 0.5;     // in [0, 1]
  double learning_rate = 0.2;       // > 0 (geometric update)
  double expected_clients = 0;      // > 0; divides the noised count sum
  double clipped_count_stddev = 0;  // >= 0; Gaussian noise on the summed bits
};

// Server-side state of the quantile estimate; the device side is the static ClipBit().
//
// Protocol per round:
//   device:  bit = AdaptiveClipper::ClipBit(norm_before_clipping, clipper.clip());
//            send `bit` (0 or 1) through secure aggregation, e.g. appended as one extra
//            element to the DDG-encoded vector (the sum mod 2^b is the exact count as long as
//            fewer than 2^b devices report).
//   server:  clipper.Update(summed_bits, num_devices_summed, rng);
// The bit is only ever seen summed. Update computes
//   b_avg = clip((sum(bit - 0.5) + N(0, s^2)) / expected_clients + 0.5, 0, 1)
//   C <- C * exp(-lr * (b_avg - target)).
class AdaptiveClipper {
 public:
  // Fails with INVALID_ARGUMENT for a non-positive/non-finite initial clip, learning rate or
  // expected client count, a target outside [0, 1] or a negative count stddev.
  static absl::StatusOr<AdaptiveClipper> Create(const AdaptiveClipConfig& config);

  // The current clipping bound.
  double clip() const { return clip_; }
  // Restores the bound reached before a coordinator restart. INVALID_ARGUMENT unless > 0 and
  // finite.
  absl::Status RestoreClip(double clip);
  const AdaptiveClipConfig& config() const { return config_; }

  // Device side: 1 if norm <= clip (not clipped), else 0. A NaN norm gives 0.
  static uint32_t ClipBit(double norm, double clip);

  // Server side: applies one geometric update from the securely summed bits.
  // `below_count` = sum of ClipBit over the `num_reported` devices whose bits were summed.
  // Returns the new clip. Fails with INVALID_ARGUMENT if below_count > num_reported
  // (state unchanged).
  absl::StatusOr<double> Update(uint64_t below_count, uint64_t num_reported, RandomSource& rng);

  // Server side when the devices noised the count themselves (distributed DP, see
  // ddg_count.h): `noisy_centered_sum` estimates sum(bit - 0.5) and already carries all the
  // noise, so none is added here. Returns the new clip; INVALID_ARGUMENT (state unchanged)
  // for a non-finite sum.
  absl::StatusOr<double> UpdateFromNoisySum(double noisy_centered_sum);

 private:
  explicit AdaptiveClipper(const AdaptiveClipConfig& config)
      : config_(config), clip_(config.initial_clip) {}
  AdaptiveClipConfig config_;
  double clip_;
};

}  // namespace fedlora::privacy

#endif  // FEDLORA_PRIVACY_CLIPPING_H_
