// What the simulator adds around one round's real privacy path: the network. Each reporting
// device runs privacy::PrepareUpdate (the phone's code, with seeded noise because this is a
// simulation), the dice decide who drops out in which secure-aggregation phase, the real
// secure-aggregation states run over the in-process transport, and the coordinator's
// FederatedTraining decodes, steps the server optimizer and charges the accountant. Nothing
// here clips, encodes or aggregates by itself.
#ifndef FEDLORA_SIM_AGGREGATION_H_
#define FEDLORA_SIM_AGGREGATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/common/random.h"
#include "fedlora/coordinator/federated_training.h"
#include "fedlora/sim/report.h"
#include "fedlora/sim/sim_config.h"

namespace fedlora::sim {

struct AggregationInput {
  std::vector<int> devices;                // population indices of the cohort
  std::vector<std::string> users;          // their user ids (for the drop report)
  std::vector<std::vector<float>> deltas;  // per device, flat
  std::vector<bool> missed_deadline;       // stragglers: never report this round
  uint64_t round_seed = 0;                 // derives the devices' (simulated) noise seeds
};

struct AggregationResult {
  coordinator::RoundOutcome outcome;  // released or aborted, clip, epsilon
  std::vector<DropRecord> dropped;
  int survivors = 0;
  double mean_norm = 0;         // devices' own log: norm before clipping
  double clipped_fraction = 0;  // devices' own log (the server only sees a noisy count)
  double seconds = 0;
};

// Runs the round planned by `plan`; `dice` drives the simulated dropouts and the secure-
// aggregation session randomness. Errors only for broken inputs (a shape mismatch); an
// aborted round is an outcome, not an error.
absl::StatusOr<AggregationResult> RunPrivacyRound(const SimConfig& config,
                                                  coordinator::FederatedTraining& training,
                                                  const coordinator::RoundPlan& plan,
                                                  AggregationInput& input, RandomSource& dice);

// The coordinator's privacy recipe for a simulator config and population.
coordinator::PrivacyRecipe MakeRecipe(const SimConfig& config, size_t dim, int population);

}  // namespace fedlora::sim

#endif  // FEDLORA_SIM_AGGREGATION_H_
