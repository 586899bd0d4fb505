// Both epsilons of a run as the coordinator's ledger has them (every charged round, aborted ones
// included), for the two engines that run a real coordinator: the in-process round engine and
// the --transport grpc driver.
#ifndef FEDLORA_SIM_SRC_LEDGER_EPSILONS_H_
#define FEDLORA_SIM_SRC_LEDGER_EPSILONS_H_

#include "absl/status/status.h"
#include "fedlora/coordinator/store.h"
#include "fedlora/sim/report.h"

namespace fedlora::sim {

// Sets rec->epsilon / epsilon_coordinator and the summary's epsilons, max_rounds_per_device and
// privacy_assumption from coordinator::ComputeRunEpsilons(store, delta). Its errors as they are.
absl::Status RecordLedgerEpsilons(const coordinator::Store& store, double delta, RoundRecord* rec,
                                  Summary* summary);

}  // namespace fedlora::sim

#endif  // FEDLORA_SIM_SRC_LEDGER_EPSILONS_H_
