// The coordinator's rounds, transport-free: check-ins, selection, the four secure-aggregation
// phases and the commit, as a state machine with one small class per state (round_states.h).
// The gRPC service (grpc_service.h) authenticates calls and forwards them here; tests may drive
// it directly.
//
// A round: selecting (a fixed window from the round's opening; every eligible device checking
// in during it gets one Poisson coin with the recipe's rate q, and sampled devices wait for the
// window's end; a sample below the minimum or above max_cohort aborts the round, charged) ->
// configuring (the privacy charge committed to the store, the secure-aggregation session, or one
// per shard with max_shard_size (shard_plan.h); each sampled device gets its task, naming its
// shard) -> advertise_keys (devices train, privatize, send keys;
// deadline = training deadline) -> share_keys -> masked_input -> unmasking (each closes at its
// deadline or when no sampled device is pending; every input that arrives in time is summed)
// -> committing (on the worker thread: each shard's sum unmasked, the shards that kept their
// minimum added, decoded, checked against the norm bound, the new adapter version written after
// the charge; a shard below its minimum is dropped, and the round aborts if the rest hold fewer
// than the round's minimum). Any phase may abort the round; once coins were flipped every
// abort is charged, the reason (without private counts) is kept in the store and the next
// round starts.
//
// Thread-safe: every entry point takes one mutex (held only for bookkeeping: each call returns
// at once); replies are delivered through the callbacks, outside the mutex, exactly once per
// call. The round's finish (unmasking, decoding, the server step, the store commit) runs on
// the manager's worker thread without the mutex, the state meanwhile being "committing":
// check-ins are rejected at once with REJECTION_NO_ROUND_OPEN and a retry window, as in every
// phase but selection. Without Start() (driven by Tick alone: the simulator, fake-clock tests)
// the finish runs inline on the thread that closes the unmasking phase.
#ifndef FEDLORA_COORDINATOR_ROUND_MANAGER_H_
#define FEDLORA_COORDINATOR_ROUND_MANAGER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fedlora/common/lora_method.h"
#include "fedlora/common/random.h"
#include "fedlora/coordinator/federated_training.h"
#include "fedlora/coordinator/metrics.h"
#include "fedlora/coordinator/remote_shard.h"
#include "fedlora/coordinator/selection_window.h"
#include "fedlora/coordinator/store.h"
#include "fedlora/proto/fedlora_v1.pb.h"
#include "fedlora/secagg/types.h"

namespace fedlora::coordinator {

struct CoordinatorOptions {
  // Distributed DP with Poisson sampling (the gRPC coordinator supports nothing else: deltas
  // only ever leave devices masked). expected_cohort (`goal`) is the public expected sample:
  // the noise is calibrated for min_survivors of it and the mean divides by it; max_cohort
  // is the largest sample a round may sum (0: Create sets DefaultMaxCohort, as
  // coordinator.json's 0 does).
  PrivacyRecipe recipe;
  // FedAvg, FedAdam or FedYogi; the adaptive optimizers' moments are stored with every
  // committed version (same transaction) and restored on restart.
  ServerOptimizerConfig optimizer;
  // What devices train and share (common/lora_method.h): the secure-aggregation vector holds
  // the shared values only; ffa and fedsa need the adapter blob's slot layout.
  LoraMethod lora_method = LoraMethod::kLora;
  v1::TrainingRecipe training;
  std::string base_model_sha256;  // hex; devices with another base are refused
  int max_rounds = 0;  // committed rounds of the run (a restart counts on); 0 = until the budget
  // Selection is a fixed window of this length from the round's opening (whoever checks in).
  // At its end the round proceeds if the sample is within [max(2, min_clients), max_cohort]
  // and is aborted, charged, otherwise; a window in which nobody checked in just restarts.
  absl::Duration selection_window = absl::Seconds(10);
  absl::Duration train_deadline = absl::Minutes(5);   // task -> AdvertiseKeys
  absl::Duration phase_deadline = absl::Seconds(60);  // each later phase
  // Rejected devices come back within [retry_min, retry_max], spread uniformly (pace steering).
  absl::Duration retry_min = absl::Seconds(1);
  absl::Duration retry_max = absl::Seconds(10);
  proto::SecAggGraph graph = proto::SECAGG_GRAPH_KREGULAR;  // complete graph when n is small
  // Test hook (FEDLORA_COORDINATOR_CRASH_AT): SIGKILL this process on entering the named
  // phase ("selecting", "configuring", "advertise_keys", "share_keys", "masked_input",
  // "unmasking", "committing", "committed").
  std::string crash_at;
  // Receives one line per event worth logging (round opened/committed/aborted, restarts).
  std::function<void(const std::string&)> log;
  // The time every entry point reads (check-ins, uploads, Create, the Start() driver); null =
  // absl::Now. The simulator passes a virtual clock and drives Tick itself.
  std::function<absl::Time()> clock;
  // Simulation only: accept a seeded (non-secure) generator for sampling, rotation seeds and
  // session nonces, so that a simulated run repeats. A deployment never sets it.
  bool allow_seeded_rng = false;
  // Multi-host leaders (selection_window.h; null in single-host mode and the simulator):
  // `publish_window` gets the selection window whenever one opens or closes, when training
  // ends and on Start() (called under the manager's mutex: one store write);
  // `coins_flipped_elsewhere(round, opened)` is asked at the end of a window in which no
  // device was sampled here, whether an edge flipped a coin in it (then the round is charged
  // and aborted as too small, as a single-host round with coins and no sample is).
  std::function<void(const SelectionWindow&)> publish_window;
  std::function<bool(uint64_t round, absl::Time opened)> coins_flipped_elsewhere;
  // Multi-host leaders with aggregator processes (remote_shard.h): a sharded round's shards are
  // handed round robin to the live aggregators (none live: run here, as without it); each
  // device's task names its aggregator. A shard whose aggregator fails or does not answer by
  // the unmasking deadline (+ phase_deadline) is dropped like a local shard below its minimum.
  std::shared_ptr<ShardDispatcher> shard_dispatcher;
};

// Where the run is (the sample size is private and not part of it).
struct RoundSummary {
  uint64_t round = 0;
  std::string phase;
};

class RoundManager {
 public:
  using CheckInDone = std::function<void(absl::Status, v1::CheckInResponse)>;
  using SecAggDone = std::function<void(absl::Status, v1::SecAggDownload)>;

  // Opens the run on `store`: a fresh store must hold an initial adapter (PutInitialAdapter);
  // a store with history is resumed (the latest version, the clip, every charge; a round left
  // running by a crash is aborted with the reason "coordinator restarted during PHASE", and
  // stays charged if it was). `store`, `metrics` and `rng` must outlive the manager.
  static absl::StatusOr<std::unique_ptr<RoundManager>> Create(const CoordinatorOptions& options,
                                                             Store* store,
                                                             MetricsRegistry* metrics,
                                                             RandomSource* rng);
  ~RoundManager();

  // `device_id` is authenticated by the caller. The reply may come later (a sampled device
  // waits for the end of the selection window). A request with `eligible` false (the device
  // decided it holds too few training windows) is rejected at once with
  // REJECTION_TOO_FEW_EXAMPLES (no coin).
  void CheckIn(const std::string& device_id, const v1::CheckInRequest& request, CheckInDone done);
  // `phase` is the RPC called. Replies when the phase closes. Errors: PERMISSION_DENIED (not
  // in this round's cohort, or a message for another device), FAILED_PRECONDITION (wrong
  // phase, wrong round, a different second message), and the secure-aggregation server's
  // rejection (the device is dropped).
  // `digest` identifies the upload's bytes (an identical retry is recognised by it); the
  // service passes the SHA-256 it computed for the signature, "" lets the manager compute it.
  void SecAgg(const std::string& device_id, secagg::Phase phase, const v1::SecAggUpload& upload,
              const std::string& digest, SecAggDone done);

  // Advances the state machine (deadlines, goals). Called by the driver thread of Start(), or
  // by tests with a fake clock.
  void Tick(absl::Time now);
  // Runs Tick every ~10 ms (and on every event) on a driver thread until Stop(), and starts
  // the worker that runs the round's finish.
  void Start();
  // Stops the driver; waits for a finish already posted or running (a commit is never cut
  // short), then stops the worker.
  void Stop();
  // Answers every waiting call with UNAVAILABLE ("coordinator shutting down"); for shutdown.
  void Drain();
  // Blocks until training is over (max_rounds reached or budget spent) or `timeout`.
  bool WaitUntilFinished(absl::Duration timeout);

  RoundSummary Current() const;
  double epsilon() const;
  bool finished() const;

 private:
  struct Impl;
  explicit RoundManager(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_ROUND_MANAGER_H_
