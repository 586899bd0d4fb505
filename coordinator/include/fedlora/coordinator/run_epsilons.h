// The run's two epsilons, recomputed from the store's privacy ledger (docs/privacy.md, "Threat
// model"):
//   against observers of released adapters: the composed, sampling-amplified charge of every
//     charged round (what the coordinator's accountant holds);
//   against the coordinator: for each device, the rounds it took part in, without
//     amplification (privacy/participation_accountant.h); the largest over devices. Each device
//     computes and enforces its own (device/device_ledger.h); this is the coordinator's view.
#ifndef FEDLORA_COORDINATOR_RUN_EPSILONS_H_
#define FEDLORA_COORDINATOR_RUN_EPSILONS_H_

#include <string>

#include "absl/status/statusor.h"
#include "fedlora/coordinator/store.h"
#include "nlohmann/json.hpp"

namespace fedlora::coordinator {

struct RunEpsilons {
  double delta = 0;
  int rounds_charged = 0;
  double observers = 0;              // amplified; holds against anyone who sees only releases
  std::string observers_assumption;  // the neighbouring relation and sampling it assumes
  double coordinator = 0;            // the worst device's epsilon against the coordinator
  int max_rounds_per_device = 0;     // the most charged rounds any one device was in
  // {"delta", "rounds_charged", "epsilon_observers": {...}, "epsilon_coordinator": {...}}; an
  // unbounded epsilon is JSON null with "unbounded": true.
  nlohmann::json ToJson() const;
};

// DATA_LOSS when a ledger entry cannot be read back; the store's errors otherwise;
// INVALID_ARGUMENT for delta outside (0, 1).
absl::StatusOr<RunEpsilons> ComputeRunEpsilons(const Store& store, double delta);

// The store's pinned delta (pinned_params.h); NOT_FOUND for a folder made before pinning.
absl::StatusOr<double> PinnedDelta(const Store& store);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_RUN_EPSILONS_H_
