// What the round states share: the run (options, store, training, metrics, generator), the
// current round's data, and the replies to deliver once the manager's mutex is released.
#ifndef FEDLORA_COORDINATOR_SRC_ROUND_CONTEXT_H_
#define FEDLORA_COORDINATOR_SRC_ROUND_CONTEXT_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "fedlora/common/adapter_blob.h"
#include "fedlora/coordinator/round_manager.h"
#include "fedlora/secagg/server.h"

namespace fedlora::coordinator {

// Collects the secure-aggregation server's outgoing messages per device until the phase's
// replies go out.
class CollectingSender : public secagg::SendToDevicesInterface {
 public:
  void Send(uint32_t device, const proto::SecAggServerMessage& message) override {
    out_[device] = message;
  }
  std::map<uint32_t, proto::SecAggServerMessage> Take() { return std::move(out_); }

 private:
  std::map<uint32_t, proto::SecAggServerMessage> out_;
};

struct PendingReply {
  RoundManager::SecAggDone done;
  std::string message_bytes;  // digest of what the device sent: an identical retry replaces `done`
};

// One shard's secure-aggregation session (shard_plan.h); an unsharded round has one.
struct ShardSession {
  proto::SecAggSessionConfig session;
  std::unique_ptr<CollectingSender> sender;
  std::unique_ptr<secagg::SecAggServer> server;
  bool dropped = false;  // aborted below its minimum: never unmasked, its devices dropouts
  absl::Status why;      // the server's reason when dropped (private counts: never stored)
  // Multi-host: the shard runs at an aggregator process (remote_shard.h); `server` and
  // `sender` are then null and its devices send their secure-aggregation calls there.
  std::string aggregator;
  std::shared_ptr<RemoteShard> remote;
  absl::Time remote_deadline;  // the leader waits for its sum until then
};

// Where a device runs: its shard and its index in that shard's session.
struct SecAggSlot {
  uint32_t shard = 0;
  uint32_t id = 0;
};

// One round, from its first check-in to its commit or abort.
struct RoundData {
  uint64_t round = 0;
  absl::Time opened;                           // the selection window starts here
  std::vector<std::string> cohort;             // cohort index -> device id (sample order)
  std::map<std::string, uint32_t> ids;         // device id -> cohort index
  std::map<std::string, RoundManager::CheckInDone> waiting;  // selected, awaiting the task
  std::set<std::string> flipped;               // devices that got their coin this round
  std::string coin_key;  // drawn when the selection opens: one coin per device (selection_coin.h)
  std::optional<RoundPlan> plan;
  std::vector<ShardSession> shards;            // from configuring on
  std::map<std::string, SecAggSlot> slots;     // device id -> its shard and session index
  std::map<std::string, PendingReply> pending;  // by device id: replies owed when the phase closes
  bool begun = false;                          // recorded in the store (BeginRound)
  bool charged = false;                        // the charge is in the store (ChargeInStore)
  bool accounted = false;                      // the accountant already charged an aborted round
};

// Everything a state may touch. Built by the manager under its mutex for one call.
struct RoundContext {
  const CoordinatorOptions& options;
  Store& store;
  MetricsRegistry& metrics;
  RandomSource& rng;
  FederatedTraining& training;
  RoundData& round;
  // Run after the mutex is released (gRPC replies).
  std::vector<std::function<void()>>& completions;
  absl::Time now;
  // The global adapter devices train from.
  const AdapterVersion& adapter;
  // Its blob (full adapter and slot layout), updated by a commit, and the positions of the
  // values devices share (CoordinatorOptions::lora_method); the training holds those only.
  AdapterBlob& current;
  const std::vector<size_t>& shared;
  int min_cohort = 0;             // max(2, min_clients): a smaller sample aborts (charged)
  int max_cohort = 0;             // MaxCohort(recipe): a larger sample aborts (charged)
  int rounds_done = 0;            // committed rounds of the run (aborted ones do not count)
  // Set by states: the adapter version a commit produced, the round log line.
  std::optional<AdapterVersion> committed;
  bool reload_from_store = false;  // memory ran ahead of the store (a failed commit)
  std::string log;
};

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_SRC_ROUND_CONTEXT_H_
