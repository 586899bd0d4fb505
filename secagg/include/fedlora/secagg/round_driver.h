// Runs a whole secure-aggregation round in one process: n SecAggDevice objects and one
// SecAggServer exchanging protobuf messages through in-memory queues. For the federated
// simulator (hundreds of devices per round), tests and `fedlora bench secagg`. Dropouts are
// injected per phase, by list or by probability; transport hooks let tests tamper with,
// drop, duplicate or replay messages.
//
//   RoundConfig cfg;
//   cfg.session.num_devices = 500; cfg.session.dim = 100000; cfg.session.bits = 20;
//   cfg.session.graph = proto::SECAGG_GRAPH_KREGULAR;
//   SeededRandom rng(42);   // or SecureRandom in production
//   auto result = RunInProcessRound(cfg, inputs, DropoutPlan::Fraction(Phase::kMaskedInput,
//                                   0.1), rng);
//   if (result.ok() && !result->aborted) use(result->sum);
#ifndef FEDLORA_SECAGG_ROUND_DRIVER_H_
#define FEDLORA_SECAGG_ROUND_DRIVER_H_

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedlora/proto/secagg.pb.h"
#include "fedlora/secagg/rng.h"
#include "fedlora/secagg/session_config.h"
#include "fedlora/secagg/types.h"

namespace fedlora::secagg {

// Which devices go silent in which phase: a silent device got the phase's request (or, in
// advertise_keys, was asked to start) and never answers, now or later.
struct DropoutPlan {
  std::array<std::vector<uint32_t>, kNumProtocolPhases> silent_in_phase;
  // Additionally, every device still answering at the start of phase i goes silent with
  // probability probability[i] (drawn from the round's Rng, so reproducible).
  std::array<double, kNumProtocolPhases> probability{};

  static DropoutPlan None() { return DropoutPlan(); }
  // Each device goes silent in `phase` with probability p.
  static DropoutPlan Fraction(Phase phase, double p);
  // Exactly round(p * n) devices, chosen by `rng`, go silent in `phase`.
  static DropoutPlan ExactFraction(Phase phase, double p, uint32_t num_devices, RandomSource& rng);
};

// Test hooks on the in-memory transport. Unset members deliver unchanged.
struct TransportHooks {
  // Maps one device->server message (sent during server phase `phase`) to the messages
  // actually delivered: {} loses it, {m, m} duplicates it, a stored copy can be replayed.
  std::function<std::vector<proto::SecAggDeviceMessage>(Phase phase,
                                                        proto::SecAggDeviceMessage message)>
      to_server;
  // May alter a server->device message before it is queued.
  std::function<void(uint32_t device, proto::SecAggServerMessage* message)> to_device;
};

struct RoundConfig {
  SessionParams session;
  // Threads running device computations (the server is sequential); 0 = all cores.
  int threads = 0;
};

struct DeviceReport {
  uint32_t id = 0;
  bool included_in_sum = false;          // its input is in `sum`
  bool injected_dropout = false;         // silenced by the DropoutPlan
  Phase dropped_in = Phase::kCompleted;  // kCompleted: never dropped
  DropReason reason = DropReason::kNone;
  std::string detail;           // the server's rejection and/or the device's own abort reason
  uint64_t bytes_sent = 0;      // serialized protobuf bytes, device -> server
  uint64_t bytes_received = 0;  // serialized protobuf bytes, server -> device
  double compute_seconds = 0;   // wall time inside this device's protocol calls
};

struct RoundReport {
  std::vector<DeviceReport> devices;
  std::array<double, kNumProtocolPhases> server_phase_seconds{};  // handling + proceeding
  double server_compute_seconds = 0;
  double wall_seconds = 0;
  std::array<int, kNumDropReasons> drop_counts{};  // indexed by DropReason
  int rejected_unknown_device = 0;
};

struct RoundResult {
  proto::SecAggSessionConfig config;  // as derived (threshold, degree, nonce)
  bool aborted = false;
  absl::Status abort_status;               // why, when aborted
  std::vector<uint32_t> sum;               // sum mod 2^bits of included inputs (empty if aborted)
  std::vector<uint32_t> included_devices;  // ascending
  RoundReport report;
};

// Runs one round. INVALID_ARGUMENT for bad parameters, inputs.size() != num_devices, a
// vector of the wrong length or an entry >= 2^bits; FAILED_PRECONDITION when no k-regular
// parameters exist. A round that aborts below threshold is not an error: aborted = true.
absl::StatusOr<RoundResult> RunInProcessRound(const RoundConfig& config,
                                              const std::vector<std::vector<uint32_t>>& inputs,
                                              const DropoutPlan& plan, RandomSource& rng,
                                              const TransportHooks* hooks = nullptr);

// Sum mod 2^bits of inputs[d] over `devices` (reference for checks).
std::vector<uint32_t> PlainSum(const std::vector<std::vector<uint32_t>>& inputs,
                               const std::vector<uint32_t>& devices, int bits);

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_ROUND_DRIVER_H_
