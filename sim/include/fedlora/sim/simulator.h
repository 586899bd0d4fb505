// `fedlora sim`: a population of virtual devices federating a LoRA adapter over one shared
// base model, through the same privacy path a phone runs.
//
// One copy of the base model is in memory; a device's own state is its token windows (and an
// adapter plus optimizer state only while it trains). Each round: sample a cohort, train
// locally (batched or sequential), clip + encode + secure-aggregate, update the global adapter
// with the server optimizer, account for privacy, evaluate every K rounds.
#ifndef FEDLORA_SIM_SIMULATOR_H_
#define FEDLORA_SIM_SIMULATOR_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/sim/report.h"
#include "fedlora/sim/sim_config.h"

namespace fedlora::sim {

struct SimResult {
  Summary summary;
  std::vector<RoundRecord> rounds;
  std::vector<float> global_adapter;  // flat, final
};

class Simulator {
 public:
  // Loads the model (or pretrains one on public text when `config.model` is empty), the
  // dataset and the population, and checks the privacy settings and budget. Errors name the
  // config key or file at fault; a budget that even one round would exceed is refused here.
  static absl::StatusOr<std::unique_ptr<Simulator>> Create(const SimConfig& config);
  ~Simulator();

  // Runs the rounds; `on_round` sees each record as it completes. On the coordinator's round
  // engine (UsesCoordinatorEngine, docs/sim.md "Round engine") the coordinator's state folder is
  // (re)created under <out>/coordinator/ (PERMISSION_DENIED when it cannot be); the simulator's
  // own sampling writes nothing to disk.
  absl::StatusOr<SimResult> Run(const std::function<void(const RoundRecord&)>& on_round = {});

  // The same rounds with a real coordinator process and the devices as its gRPC clients
  // (run.transport = grpc; sim/src/grpc_transport.cc): `fedlora coordinator run` is started
  // from `fedlora_binary` on 127.0.0.1 with TLS (state folder <out>/grpc/coordinator), every
  // device is enrolled with its own key and token, and each round's check-ins, downloads,
  // secure-aggregation phases and reports go over the network; the coordinator stops at the
  // end. INVALID_ARGUMENT for a config the coordinator cannot run (central DP, fixed-size
  // sampling, FedAdam), UNAVAILABLE when the coordinator does not start or a call fails.
  struct GrpcTransportOptions {
    std::string fedlora_binary;  // e.g. /proc/self/exe
  };
  absl::StatusOr<SimResult> RunOverGrpc(
      const GrpcTransportOptions& options,
      const std::function<void(const RoundRecord&)>& on_round = {});

  // Saves `flat` as a PEFT adapter directory.
  absl::Status SaveAdapter(const std::vector<float>& flat, const std::string& dir) const;

  // Population facts for reports.
  int num_train_devices() const;
  int num_heldout_users() const;
  const std::string& model_dir() const;
  // "float32", or the compression of the base the devices run (model.compress).
  const std::string& base_description() const;

  struct State;  // internal (sim/src/sim_state.h)

 private:
  explicit Simulator(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

}  // namespace fedlora::sim

#endif  // FEDLORA_SIM_SIMULATOR_H_
