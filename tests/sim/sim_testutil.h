// Helpers the simulator tests share: a tiny model and a small, fast config.
#ifndef FEDLORA_TESTS_SIM_SIM_TESTUTIL_H_
#define FEDLORA_TESTS_SIM_SIM_TESTUTIL_H_

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/coordinator/store.h"
#include "fedlora/sim/sim_config.h"
#include "fedlora/sim/simulator.h"

namespace fedlora::sim {

// A tiny random model with a tokenizer trained on the personas' public text, made once per
// test process under the temp folder; returns its directory (aborts if it cannot be made).
const std::string& TinyModelDir();

// 12 devices over "personas:lines=20", 2 rounds of a fixed cohort of 6, the complete graph,
// no dropout, tiny local training; run.out = <temp>/<out>, no progress bar.
SimConfig SmallConfig(const std::string& out);

// SmallConfig with the coordinator's sampling (distributed DP, Poisson, the default engine:
// the coordinator's round engine), only the final evaluation, no personalization; run.out
// emptied.
SimConfig PoissonConfig(const std::string& out);

// Simulator::Create(config), then Run().
absl::StatusOr<SimResult> RunSim(const SimConfig& config);

// The coordinator engine's store under <run.out>/coordinator/ (store null, with a test failure,
// when there is none): its rounds, the rounds it charged and each round's participants.
struct StoreView {
  std::unique_ptr<coordinator::Store> store;
  std::map<uint64_t, coordinator::RoundRecord> rounds;
  std::set<uint64_t> charged;
  std::map<uint64_t, std::vector<std::string>> participants;
};
StoreView OpenStore(const SimConfig& config);

}  // namespace fedlora::sim

#endif  // FEDLORA_TESTS_SIM_SIM_TESTUTIL_H_
