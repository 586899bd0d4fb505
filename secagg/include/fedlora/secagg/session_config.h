// Building a session config: the coordinator picks the graph, threshold and degree from the
// population size and the expected dropout and corrupt rates, and draws the round nonce and
// graph seed.
#ifndef FEDLORA_SECAGG_SESSION_CONFIG_H_
#define FEDLORA_SECAGG_SESSION_CONFIG_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "fedlora/proto/secagg.pb.h"
#include "fedlora/secagg/rng.h"

namespace fedlora::secagg {

struct SessionParams {
  uint32_t num_devices = 0;  // n
  uint64_t dim = 0;          // D, vector length
  int bits = 32;             // b: inputs and sum live in Z_{2^b}, 1..32
  proto::SecAggGraph graph = proto::SECAGG_GRAPH_COMPLETE;
  // 0 = derive: complete graph floor(n/2)+1; k-regular from ComputeKRegularParameters.
  uint32_t threshold = 0;
  // k-regular only; 0 = derive (then threshold is derived too unless set).
  uint32_t degree = 0;
  double expected_dropout_rate = 0.1;  // total over the round, used to derive t and k
  double corrupt_rate = 0.05;          // fraction of devices assumed to collude with server
  // Fewest masked inputs the server may unmask (distributed DP: the min_clients the noise is
  // calibrated for); 0 = no requirement beyond the threshold. Must be <= num_devices.
  uint32_t min_sum_devices = 0;
};

// Returns a validated config with a fresh 32-byte round nonce and graph seed from `rng`.
// INVALID_ARGUMENT for out-of-range fields or parameters no threshold can satisfy;
// FAILED_PRECONDITION when no k-regular degree meets the security targets (hint: use the
// complete graph for small n).
absl::StatusOr<proto::SecAggSessionConfig> MakeSessionConfig(const SessionParams& params,
                                                             RandomSource& rng);

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_SESSION_CONFIG_H_
