#include "ledger_epsilons.h"

#include "fedlora/common/status_macros.h"
#include "fedlora/coordinator/run_epsilons.h"

namespace fedlora::sim {

absl::Status RecordLedgerEpsilons(const coordinator::Store& store, double delta, RoundRecord* rec,
                                  Summary* summary) {
  FEDLORA_ASSIGN_OR_RETURN(coordinator::RunEpsilons eps,
                           coordinator::ComputeRunEpsilons(store, delta));
  rec->epsilon = eps.observers;
  rec->epsilon_coordinator = eps.coordinator;
  summary->epsilon = eps.observers;
  summary->epsilon_coordinator = eps.coordinator;
  summary->max_rounds_per_device = eps.max_rounds_per_device;
  if (!eps.observers_assumption.empty()) summary->privacy_assumption = eps.observers_assumption;
  return absl::OkStatus();
}

}  // namespace fedlora::sim
