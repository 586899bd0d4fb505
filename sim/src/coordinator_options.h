// The simulator's config as the coordinator's options: what `--transport grpc` writes to the
// state folder's coordinator.json and what the in-process coordinator round engine
// (coordinator_driver.h) runs. One mapping, so that the two transports cannot diverge.
#ifndef FEDLORA_SIM_SRC_COORDINATOR_OPTIONS_H_
#define FEDLORA_SIM_SRC_COORDINATOR_OPTIONS_H_

#include <string>

#include "fedlora/coordinator/round_manager.h"
#include "fedlora/sim/sim_config.h"

namespace fedlora::sim {

// Simulated on-device throughput (tokens/s) of a device of speed 1: a device's training time,
// compared with secagg.deadline.
inline constexpr double kReferenceTokensPerSecond = 2000.0;

// The options for `recipe` (MakeRecipe of the config) and the base model's hash. Durations are
// the gRPC rehearsal's (seconds of real time there, of virtual time in process); max_rounds
// is 0 (the simulation decides when to stop). The server optimizer is the config's whole
// server.* section (the JSON of coordinator.json carries its learning rate only).
coordinator::CoordinatorOptions CoordinatorOptionsFor(const SimConfig& config,
                                                      const coordinator::PrivacyRecipe& recipe,
                                                      const std::string& base_model_sha256);

}  // namespace fedlora::sim

#endif  // FEDLORA_SIM_SRC_COORDINATOR_OPTIONS_H_
