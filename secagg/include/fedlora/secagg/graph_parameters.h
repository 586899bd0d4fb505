// Degree and threshold of the SecAgg+ k-regular graph for a stated security level, after the
// analysis of Bell et al. 2020 (as in federated-compute's graph parameter finder): the
// smallest even degree k such that, with n devices of which at most a `corrupt_rate`
// fraction collude with the server and at most a `dropout_rate` fraction drop out,
//  - the honest survivors stay connected except with probability 2^-(security_bits + 1),
//  - no device has >= t corrupt neighbours except with probability 2^-(security_bits+1)/n,
//  - every device keeps >= t surviving neighbours except with probability 2^-correctness/n.
#ifndef FEDLORA_SECAGG_GRAPH_PARAMETERS_H_
#define FEDLORA_SECAGG_GRAPH_PARAMETERS_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace fedlora::secagg {

struct GraphParameters {
  uint32_t degree = 0;     // neighbours per device (even)
  uint32_t threshold = 0;  // Shamir threshold t
};

// INVALID_ARGUMENT for n < 4 or rates outside [0, 1) or corrupt + dropout > 0.9;
// FAILED_PRECONDITION when no degree below n - 1 meets the targets (hint: small n; use the
// complete graph).
absl::StatusOr<GraphParameters> ComputeKRegularParameters(uint32_t num_devices, double dropout_rate,
                                                          double corrupt_rate,
                                                          double security_bits = 40,
                                                          double correctness_bits = 20);

// Threshold for the complete graph: floor(n/2) + 1 (an honest majority of n must collude
// to unmask anyone). INVALID_ARGUMENT when the expected survivors (1 - dropout_rate) * n
// fall below it or corrupt_rate * n reaches it.
absl::StatusOr<uint32_t> CompleteGraphThreshold(uint32_t num_devices, double dropout_rate,
                                                double corrupt_rate);

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_GRAPH_PARAMETERS_H_
