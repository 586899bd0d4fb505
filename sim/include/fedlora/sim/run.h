// One whole `fedlora sim` run: validate the config, prepare --out, create the simulator, run
// the rounds (in process or over gRPC), save the global adapter and write the report. The CLI
// (tools/cmd_sim.cc) and the Python module (python/) both call this, so they cannot drift.
#ifndef FEDLORA_SIM_RUN_H_
#define FEDLORA_SIM_RUN_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "fedlora/sim/sim_config.h"
#include "fedlora/sim/simulator.h"

namespace fedlora::sim {

struct RunOptions {
  bool force = false;          // overwrite an earlier run's files in config.out
  std::string fedlora_binary;  // run.transport = grpc: the `fedlora` to start the coordinator from
  // Called once the config and out folder passed their checks, before the model is loaded.
  std::function<void()> on_checked;
  // Called once the model and population are ready, before the first round.
  std::function<void(const Simulator&)> on_ready;
  std::function<void(const RoundRecord&)> on_round;  // each round as it completes
};

// Everything is checked before anything is written: a bad config never touches an earlier
// run's files, and an unwritable out folder is found before the training. The summary's
// adapter_dir, base_model_dir and base_model_scheme are filled in. Errors carry the message the
// CLI prints (the config key or file at fault, and what to do).
absl::StatusOr<SimResult> RunSimulation(const SimConfig& config, const RunOptions& options);

}  // namespace fedlora::sim

#endif  // FEDLORA_SIM_RUN_H_
