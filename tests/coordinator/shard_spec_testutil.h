// A small shard both the aggregator's round side (aggregator_rounds_test.cc) and RunShard over
// gRPC (aggregator_shard_test.cc) are tested with: 3 made-up devices "a", "b", "c", threshold and
// minimum 2, D = 4, 8 bits, the complete graph, fixed nonce and graph seed.
#ifndef FEDLORA_TESTS_COORDINATOR_SHARD_SPEC_TESTUTIL_H_
#define FEDLORA_TESTS_COORDINATOR_SHARD_SPEC_TESTUTIL_H_

#include <cstdint>

#include "absl/time/time.h"
#include "fedlora/coordinator/aggregator_rounds.h"

namespace fedlora::coordinator {

ShardSpec ThreeDeviceShard(uint64_t round, uint32_t shard, absl::Duration advertise_deadline,
                           absl::Duration phase_deadline);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_TESTS_COORDINATOR_SHARD_SPEC_TESTUTIL_H_
