// The smallest noise multiplier whose epsilon is at most a target, for any accountant whose
// epsilon decreases with the noise (ComputeNoiseMultiplier, ComputeRoundsNoiseMultiplier).
#ifndef FEDLORA_PRIVACY_SRC_NOISE_SEARCH_H_
#define FEDLORA_PRIVACY_SRC_NOISE_SEARCH_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"

namespace fedlora::privacy::internal {

// Brackets then bisects to relative precision 1e-7. OUT_OF_RANGE naming `what` when even a
// noise multiplier of 1e6 cannot reach `target_epsilon`.
absl::StatusOr<double> SmallestNoiseFor(
    const std::function<absl::StatusOr<double>(double noise)>& epsilon_at, double target_epsilon,
    const std::string& what);

}  // namespace fedlora::privacy::internal

#endif  // FEDLORA_PRIVACY_SRC_NOISE_SEARCH_H_
