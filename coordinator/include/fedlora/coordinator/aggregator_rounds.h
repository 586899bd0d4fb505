// The round side (round_backend.h) of an aggregator process (docs/coordinator.md, "Aggregator
// processes"): runs the secure-aggregation sessions of the shards the leader hands it
// (remote_shard.h), one SecAggServer each, with the leader's rules for a phase: every message
// of the shard's devices that arrives before the phase's deadline is taken, a phase closes when
// every device still in the protocol has sent or at its deadline, an identical retry gets the
// reply, a different second message is refused. CoordinatorService authenticates each call
// (the device's own signature) before it gets here. When the unmasking phase closes, the
// shard's sum and survivor count go to the leader; the devices in the sum are told
// STATUS_COMPLETED (new_adapter_version 0: the leader commits the round, and they learn the
// version at their next check-in). Check-ins are refused: devices check in at the leader or an
// edge. Thread-safe.
#ifndef FEDLORA_COORDINATOR_AGGREGATOR_ROUNDS_H_
#define FEDLORA_COORDINATOR_AGGREGATOR_ROUNDS_H_

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fedlora/coordinator/remote_shard.h"
#include "fedlora/coordinator/round_backend.h"

namespace fedlora::coordinator {

class AggregatorRounds final : public RoundBackend {
 public:
  using ShardDone = std::function<void(absl::StatusOr<ShardSum>)>;
  // `clock`: null = absl::Now (tests pass a fake one and call Tick).
  explicit AggregatorRounds(std::function<absl::Time()> clock = nullptr);
  ~AggregatorRounds() override;

  // Starts running `spec`'s session; `done` is called once, with its sum or why it was dropped
  // (FAILED_PRECONDITION below its minimum, DEADLINE_EXCEEDED, DATA_LOSS for forged shares;
  // ABORTED when the process stops first). INVALID_ARGUMENT (at once, `done` not called): a
  // session the secagg library refuses, devices not matching it, a shard already running.
  absl::Status Host(const ShardSpec& spec, ShardDone done);
  // Closes the phases that are ready at `now`. Start() calls it every ~10 ms.
  void Tick(absl::Time now);
  void Start();
  // Stops the driver; shards still running end with ABORTED.
  void Stop();
  int running() const;

  void CheckIn(const SignedCall& call, const v1::CheckInRequest& request,
               RoundManager::CheckInDone done) override;
  void SecAgg(const SignedCall& call, secagg::Phase phase, const v1::SecAggUpload& upload,
              const std::string& digest, RoundManager::SecAggDone done) override;

 private:
  struct Hosted;
  using Key = std::pair<uint64_t, uint32_t>;  // round, shard
  absl::Time Now() const;

  std::function<absl::Time()> clock_;
  mutable std::mutex mu_;
  std::map<Key, std::unique_ptr<Hosted>> shards_;
  std::map<std::pair<std::string, uint64_t>, Key> where_;  // (device, round) -> its shard
  bool stop_ = false;
  std::thread driver_;
};

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_AGGREGATOR_ROUNDS_H_
