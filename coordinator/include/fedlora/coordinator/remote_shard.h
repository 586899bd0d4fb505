// Sharded secure aggregation in aggregator processes (multi-host; docs/coordinator.md,
// "Aggregator processes"): what a leader hands an aggregator (one shard's session, its devices
// in index order, the phase deadlines) and what comes back (the shard's unmasked sum and its
// survivor count), and the leader's seam for handing shards out (ShardDispatcher; the gRPC one
// is aggregator_client.h). The aggregator's side is aggregator_rounds.h.
#ifndef FEDLORA_COORDINATOR_REMOTE_SHARD_H_
#define FEDLORA_COORDINATOR_REMOTE_SHARD_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fedlora/proto/fedlora_v1.pb.h"

namespace fedlora::coordinator {

struct ShardSpec {
  uint64_t round = 0;
  uint32_t shard = 0;
  proto::SecAggSessionConfig session;
  std::vector<std::string> devices;   // device ids, session index order
  absl::Duration advertise_deadline;  // from the start: training and AdvertiseKeys
  absl::Duration phase_deadline;      // each later phase
};

struct ShardSum {
  std::vector<uint32_t> sum;  // mod 2^bits
  uint32_t survivors = 0;     // devices in the sum
};

v1::RunShardRequest ShardSpecToProto(const ShardSpec& spec);
ShardSpec ShardSpecFromProto(const v1::RunShardRequest& request);

// A shard running at an aggregator.
class RemoteShard {
 public:
  virtual ~RemoteShard() = default;
  // Blocks until the aggregator answers or `deadline` (then the call is cancelled:
  // DEADLINE_EXCEEDED). Any error means the shard is dropped.
  virtual absl::StatusOr<ShardSum> Wait(absl::Time deadline) = 0;
};

// The leader's seam: which aggregators are live, and running a shard at one.
class ShardDispatcher {
 public:
  virtual ~ShardDispatcher() = default;
  // The live aggregators' addresses (what devices dial). Called under the round manager's
  // mutex: must answer at once (a cached list).
  virtual std::vector<std::string> Aggregators() = 0;
  // Starts the shard at `address` (asynchronous; never blocks on the network).
  virtual std::shared_ptr<RemoteShard> Run(const std::string& address, const ShardSpec& spec) = 0;
  // For shutdown: every shard in flight is given up (its Wait fails CANCELLED, so a round's
  // finish does not wait out the shard deadlines) and later Runs fail the same way.
  virtual void CancelAll() {}
};

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_REMOTE_SHARD_H_
