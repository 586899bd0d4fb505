// The leader's ShardDispatcher (remote_shard.h) over gRPC: the live aggregators from the
// process registry (aggregator_registry.h, refreshed every `refresh`; a heartbeat older than
// `max_age` is not live), and fedlora.v1.Aggregator/RunShard calls carrying the leader's lease
// epoch (the aggregator refuses a stale one) and, in their metadata, the MAC of the request
// under the population's cluster key (cluster_key.h; the aggregator refuses a call without
// it). TLS checked against `roots_pem` (the state folder's tls/ca.pem) unless `insecure`.
#ifndef FEDLORA_COORDINATOR_AGGREGATOR_CLIENT_H_
#define FEDLORA_COORDINATOR_AGGREGATOR_CLIENT_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "fedlora/coordinator/aggregator_registry.h"
#include "fedlora/coordinator/remote_shard.h"

namespace fedlora::coordinator {

struct AggregatorClientOptions {
  std::string population = "global";
  std::function<uint64_t()> epoch;  // the leader's current lease epoch
  std::string cluster_key;          // ReadClusterKey of the state folder
  // The leader's log: a RunShard an aggregator refused UNAUTHENTICATED (a cluster.key that
  // differs from the leader's) is logged with the aggregator's address and hint.
  std::function<void(const std::string&)> log;
  bool insecure = false;
  std::string roots_pem;
  std::chrono::milliseconds max_age{3000};
  std::chrono::milliseconds refresh{500};
};

// Owns `registry`; reads it on a background thread until destroyed.
absl::StatusOr<std::shared_ptr<ShardDispatcher>> MakeGrpcShardDispatcher(
    std::unique_ptr<AggregatorRegistry> registry, AggregatorClientOptions options);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_AGGREGATOR_CLIENT_H_
