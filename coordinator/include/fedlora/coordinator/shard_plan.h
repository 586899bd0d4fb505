// Sharded secure aggregation, transport-free: which sampled device runs in which SecAgg+
// session (shard), each shard's session and survivor minimum, and the sum of the shards' sums.
//
// A round of n sampled devices runs as ceil(n / max_shard_size) shards of balanced size (sizes
// differ by at most one), the assignment a uniform permutation drawn from the coordinator's
// RandomSource (never arrival order). Each shard is its own session whose min_sum_devices is
// the shard minimum (RoundAggregator::shard_min_clients(), a public constant), and every
// device's noise is calibrated for that minimum: the coordinator sees each shard's sum, so each
// must carry the full noise on its own. A shard whose survivors fall below its minimum is never
// unmasked (its devices count as dropouts); the round is released from the other shards if
// their survivors together reach the round's minimum (RoundAggregator::min_clients()).
// Sums mod 2^bits add: the sum of the shard sums is the unsharded sum, bit for bit.
#ifndef FEDLORA_COORDINATOR_SHARD_PLAN_H_
#define FEDLORA_COORDINATOR_SHARD_PLAN_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/common/random.h"
#include "fedlora/coordinator/round_aggregator.h"
#include "fedlora/privacy/prepare_update.h"
#include "fedlora/proto/secagg.pb.h"

namespace fedlora::coordinator {

struct Shard {
  // Cohort indices (0 .. n-1) of the shard's devices, ascending; a device's index in the
  // shard's session is its position here.
  std::vector<uint32_t> members;
  // The shard's session: num_devices = members.size(), min_sum_devices = the shard minimum.
  proto::SecAggSessionConfig session;
};

struct ShardPlan {
  std::vector<Shard> shards;
  uint32_t shard_min = 0;  // survivors each shard needs to be unmasked
  uint32_t round_min = 0;  // survivors the round needs over all unmasked shards
};

// Balanced sizes of ceil(n / max_shard_size) shards (one shard of n when max_shard_size is 0 or
// n <= max_shard_size), larger ones first.
std::vector<uint32_t> ShardSizes(uint32_t num_devices, int max_shard_size);

// The plan for `num_devices` sampled devices of a round run with `params` (distributed mode).
// `graph`: SecAgg+ (k-regular), falling back to the complete graph for a shard too small for
// it. The expected dropout each session tolerates is what the noise calibration does (1 -
// min_survivors), capped so that a complete graph's honest-majority threshold stays reachable.
// Draws the assignment (only when there are several shards, so an unsharded round uses the
// generator exactly as before) and each session's nonce and graph seed from `rng`.
// FAILED_PRECONDITION when a shard would be smaller than the shard minimum (fewer than
// max(2, shard minimum) devices in all); the secagg library's errors for a session it cannot
// build.
absl::StatusOr<ShardPlan> PlanShards(const RoundAggregator& aggregator,
                                     const privacy::RoundPrivacyParams& params,
                                     uint32_t num_devices, proto::SecAggGraph graph,
                                     RandomSource& rng);

// The sum mod 2^bits of the shards' sums (each mod 2^bits, all of one length).
// INVALID_ARGUMENT for no sums, unequal lengths, bits outside [1, 32] or an entry >= 2^bits.
absl::StatusOr<std::vector<uint32_t>> AddShardSums(const std::vector<std::vector<uint32_t>>& sums,
                                                   int bits);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_SHARD_PLAN_H_
