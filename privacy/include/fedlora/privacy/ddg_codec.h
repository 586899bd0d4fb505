// The distributed discrete Gaussian (DDG) mechanism for secure aggregation (Kairouz, Liu,
// Steinke 2021, Algorithms 1-2), as in TensorFlow Federated's DistributedDpSumFactory with
// mechanism 'distributed_dgauss' and rotation 'hd'.
//
// Device (Encode): check finite -> clip to C -> randomized Hadamard rotation (pad to 2^k,
// per-round shared seed) -> scale by 1/gamma -> conditional randomized rounding (resample until
// the rounded norm is within the paper's inflated bound, beta = exp(-0.5) by default) -> add
// exact discrete Gaussian noise -> wrap into Z_{2^b} as uint32.
// Secure aggregation (someone else's code) sums the uint32 vectors mod 2^b.
// Server (Decode): to signed in [-2^(b-1), 2^(b-1)) -> multiply by gamma -> inverse rotation ->
// truncate to d. The result estimates the SUM of the clipped deltas (divide by the cohort size
// for a mean).
//
// Noise: each device adds variance (z C / gamma)^2 / n_min in the scaled domain, so the sum
// over the `min_clients` devices that survive has the target central stddev z C (more
// survivors only add noise). Parameters follow the paper's heuristic (TFF
// `_heuristic_scale_factor`): gamma is chosen so that k stddevs of the aggregate, k from the
// modular-clip probability, fit in 2^b.
#ifndef FEDLORA_PRIVACY_DDG_CODEC_H_
#define FEDLORA_PRIVACY_DDG_CODEC_H_

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/common/random.h"
#include "fedlora/privacy/discrete_gaussian.h"

namespace fedlora::privacy {

// What the caller chooses.
struct DdgConfig {
  size_t dim = 0;                    // d, length of the flat delta (> 0)
  int expected_clients = 0;          // n, devices whose vectors are summed (sets bit headroom)
  int min_clients = 0;               // surviving cohort the noise is calibrated for; 0 = n
  double l2_clip = 0;                // C > 0 (for adaptive clipping: this round's clip)
  double noise_multiplier = 0;       // z >= 0; target central stddev z * C
  int bits = 20;                     // b in [1, 32]: modulus 2^b of secure aggregation
  double modclip_prob = 1e-4;        // target probability of a coordinate wrapping, in (0, 1)
  double beta = 0.6065306597126334;  // exp(-0.5); in [0, 1); 0 = unconditional rounding
  double max_scale = 1e6;            // cap on 1/gamma (TFF's MAX_SCALE_FACTOR)
};

// What ChooseDdgParams derives from a DdgConfig.
struct DdgParams {
  DdgConfig config;
  size_t padded_dim = 0;           // D = 2^k >= d
  double k_stddevs = 0;            // sqrt(2) erfcinv(modclip_prob)
  double scale = 0;                // 1/gamma
  double gamma = 0;                // rounding granularity in the unscaled domain
  double local_stddev = 0;         // per-device noise stddev, unscaled: z C / sqrt(n_min)
  double local_sigma2_scaled = 0;  // per-device discrete Gaussian sigma^2: (local_stddev*scale)^2
  double scaled_l2_bound = 0;      // inflated L2 bound after rounding, scaled domain (sensitivity)
};

// Derives the parameters. Fails with INVALID_ARGUMENT for out-of-range fields, and with
// OUT_OF_RANGE (and a hint) when the setting overflows 2^b: 2^(2b) <= n k^2 (the noise and
// rounding of n devices alone exceed the modulus at the requested wrap probability), or
// b < log2(n).
absl::StatusOr<DdgParams> ChooseDdgParams(const DdgConfig& config);

// Per-device statistics of one Encode.
struct DdgEncodeStats {
  double norm = 0;         // L2 norm before clipping
  bool clipped = false;    // norm > C
  int rounding_tries = 0;  // conditional-rounding draws used (>= 1)
};

// Encoder/decoder for one configuration (one round: rebuild when C or the cohort changes).
class DdgCodec {
 public:
  // Fails like ChooseDdgParams, or INVALID_ARGUMENT if the scaled local variance is outside the
  // exact sampler's range.
  static absl::StatusOr<DdgCodec> Create(const DdgConfig& config);

  const DdgParams& params() const { return params_; }

  // Device side. `round_seed` must be the same on all devices and the server for this round
  // (it fixes the rotation's signs); `rng` is the device's private randomness.
  // Writes params().padded_dim values in [0, 2^b) to *out. Append the adaptive-clipping bit
  // (AdaptiveClipper::ClipBit) yourself if needed; Decode ignores trailing entries.
  // Fails with INVALID_ARGUMENT (nothing written) for n != dim or a non-finite entry, and with
  // INTERNAL if conditional rounding fails 1000 times (hint: set beta to 0).
  absl::StatusOr<DdgEncodeStats> Encode(const float* delta, size_t n, uint64_t round_seed,
                                        RandomSource& rng, std::vector<uint32_t>* out) const;

  // Server side: `sum` is the mod-2^b sum of the devices' vectors (at least padded_dim
  // entries). Returns the d-dimensional estimate of the sum of clipped deltas.
  // Fails with INVALID_ARGUMENT if sum is too short or an entry is >= 2^b.
  absl::StatusOr<std::vector<float>> Decode(const std::vector<uint32_t>& sum,
                                            uint64_t round_seed) const;

  // Predicted per-coordinate stddev of Decode's error for `num_devices` summed vectors (noise
  // plus randomized rounding, ignoring conditional-rounding bias), in unscaled units.
  double PredictedErrorStddev(int num_devices) const;

 private:
  DdgCodec(DdgParams params, DiscreteGaussianSampler sampler)
      : params_(params), sampler_(sampler) {}
  DdgParams params_;
  DiscreteGaussianSampler sampler_;
};

// The paper's probabilistic L2 bound of a vector of norm `l2` after (conditional) randomized
// rounding to the integer grid in dimension `dim` (Theorem 1 / TFF rounded_l2_norm_bound):
// min(l2 + sqrt(dim), sqrt(l2^2 + dim/4 + sqrt(2 ln(1/beta)) (l2 + sqrt(dim)/2))) for beta > 0.
double RoundedL2NormBound(double l2, double beta, double dim);

}  // namespace fedlora::privacy

#endif  // FEDLORA_PRIVACY_DDG_CODEC_H_
