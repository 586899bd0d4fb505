// The device's half of the privacy path, transport-free: what a phone runs on its local
// adapter delta before anything leaves it, with the parameters the coordinator published for
// the round. The same function serves the simulator, tests and the real device client.
//
//   none:        the delta is checked for NaN/Inf and sent as is (no privacy; research only).
//   central:     the delta is clipped to C and sent to a trusted aggregator, which adds the
//                Gaussian noise (with adaptive clipping, the clip bit goes with it).
//   distributed: clip, rotate, scale, round, add this device's discrete Gaussian share and
//                wrap into Z_{2^b} (DdgCodec); with adaptive clipping one more entry carries
//                the clipped-count bit with its own discrete Gaussian share (ddg_count.h).
//                The result is the secure-aggregation input: the server only sees sums.
//
// The noise must come from a cryptographically secure generator: PrepareUpdate refuses a
// seeded RandomSource unless the caller says it is a simulation (PrepareOptions).
#ifndef FEDLORA_PRIVACY_PREPARE_UPDATE_H_
#define FEDLORA_PRIVACY_PREPARE_UPDATE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/common/random.h"
#include "fedlora/privacy/ddg_codec.h"
#include "fedlora/privacy/ddg_count.h"

namespace fedlora::privacy {

enum class DpMode { kNone, kCentral, kDistributed };
const char* DpModeName(DpMode mode);

// Everything a device needs to privatize its update, as published for one round.
struct RoundPrivacyParams {
  DpMode mode = DpMode::kDistributed;
  size_t dim = 0;              // length of the flat adapter delta
  double clip = 0;             // this round's L2 bound C (> 0 unless mode is none)
  bool send_clip_bit = false;  // adaptive clipping: report whether norm <= C
  // Distributed mode only.
  DdgConfig value;                      // the codec configuration (dim, clip, noise, bits, ...)
  std::optional<CountDdgParams> count;  // set iff send_clip_bit
  uint64_t rotation_seed = 0;           // shared per round: the Hadamard signs
};

// Checks the fields against each other (dim, clip, value.l2_clip == clip, count iff
// send_clip_bit, bits match). INVALID_ARGUMENT naming the field.
absl::Status ValidateRoundPrivacyParams(const RoundPrivacyParams& params);

// What leaves the device, and what it may log.
struct PreparedUpdate {
  // Distributed: value entries (padded dim), then the count entry when send_clip_bit.
  std::vector<uint32_t> secagg_input;
  // Central / none: the (clipped) delta for the aggregator.
  std::vector<float> clipped_delta;
  uint32_t clip_bit = 0;  // central + adaptive: sent beside the clipped delta
  // Local log only (never sent): the norm before clipping and whether it was clipped.
  double norm = 0;
  bool clipped = false;
};

struct PrepareOptions {
  // Allows a seeded (non-secure) RandomSource: simulations and tests only.
  bool allow_seeded_noise = false;
};

// Prepares one device's update. INVALID_ARGUMENT for n != params.dim, a non-finite delta
// (the update is dropped: nothing is sent) or inconsistent params; FAILED_PRECONDITION when
// DP noise would be drawn from a seeded source without PrepareOptions::allow_seeded_noise.
absl::StatusOr<PreparedUpdate> PrepareUpdate(const float* delta, size_t n,
                                             const RoundPrivacyParams& params, RandomSource& rng,
                                             const PrepareOptions& options = {});

}  // namespace fedlora::privacy

#endif  // FEDLORA_PRIVACY_PREPARE_UPDATE_H_
