// The adaptive-clipping count with distributed noise: the clipped-count query of Andrew et al.
// travels through secure aggregation like the values do, with each device adding its own
// discrete Gaussian share, so the server never learns the exact count.
//
// Device: sends S/2 * (2 bit - 1) + DiscreteGaussian(sigma_local^2) mod 2^b, one extra
// coordinate after the value vector (bit = AdaptiveClipper::ClipBit). The centered query
// (bit - 0.5, scaled by S) has add/remove sensitivity S/2, as in TensorFlow Federated's
// adaptive clipping; the total noise over min_clients devices is S * s, where s is the
// clipped-count stddev of the noise split (AdaptiveClipNoiseParams). The scale S (a power of
// two) only makes the integer noise fine enough that the sum of discrete Gaussians is close to
// one (the accountant's tau term); it fits the bound of the modulus.
// Server: DecodeCount turns the mod-2^b sum into the noisy estimate of sum(bit - 0.5), which
// AdaptiveClipper::UpdateFromNoisySum consumes without adding noise of its own.
#ifndef FEDLORA_PRIVACY_DDG_COUNT_H_
#define FEDLORA_PRIVACY_DDG_COUNT_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "fedlora/common/random.h"
#include "fedlora/privacy/ddg_accounting.h"

namespace fedlora::privacy {

struct CountDdgParams {
  int64_t scale = 0;         // S, even, >= 2
  double local_sigma2 = 0;   // per-device discrete Gaussian variance, scaled domain
  double count_stddev = 0;   // s: total stddev over min_clients devices, in count units
  int min_clients = 0;       // the survivors the noise is calibrated for
  int expected_clients = 0;  // n: sets the headroom
  int bits = 0;              // modulus 2^bits
};

// Chooses S for a total count stddev s > 0, n expected devices, min_clients m in [1, n] and
// b bits: the largest power of two <= 256 such that n S / 2 plus 6 stddevs of the noise of n
// devices fits in 2^(b-1). INVALID_ARGUMENT for bad fields; OUT_OF_RANGE (with a hint) when
// not even S = 2 fits.
absl::StatusOr<CountDdgParams> ChooseCountDdgParams(double count_stddev, int expected_clients,
                                                    int min_clients, int bits);

// Device side: the one secure-aggregation entry for `bit` (0 or 1), in [0, 2^bits).
absl::StatusOr<uint32_t> EncodeCount(uint32_t bit, const CountDdgParams& params, RandomSource& rng);

// Server side: the noisy estimate of sum(bit - 0.5) from the mod-2^b sum of the entries.
double DecodeCount(uint32_t summed, const CountDdgParams& params);

// The count's mechanism for the accountant, add/remove sensitivities (S/2 in L1 and L2,
// dimension 1).
DdgSumMechanism CountMechanism(const CountDdgParams& params);

}  // namespace fedlora::privacy

#endif  // FEDLORA_PRIVACY_DDG_COUNT_H_
