// Aggregator processes of a multi-host population (docs/coordinator.md, "Aggregator
// processes"): each registers its device-facing address in the population's PostgreSQL
// database and renews a heartbeat on the database clock; a leader hands shards only to
// aggregators whose heartbeat is fresh. PostgreSQL only.
//
// Table `aggregators` (address primary key, heartbeat timestamptz), created if absent (not part
// of the store schema: nothing else reads it). Times are the database's `now()`, so hosts with
// skewed clocks agree on who is live.
#ifndef FEDLORA_COORDINATOR_AGGREGATOR_REGISTRY_H_
#define FEDLORA_COORDINATOR_AGGREGATOR_REGISTRY_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fedlora::coordinator {

// Thread-safe.
class AggregatorRegistry {
 public:
  virtual ~AggregatorRegistry() = default;
  // Registers `address` (host:port devices and the leader reach) or renews its heartbeat.
  virtual absl::Status Heartbeat(const std::string& address) = 0;
  // Removes `address` at once (a clean stop), so no leader hands it a shard.
  virtual absl::Status Remove(const std::string& address) = 0;
  // Addresses whose heartbeat is at most `max_age` old, sorted.
  virtual absl::StatusOr<std::vector<std::string>> Live(std::chrono::milliseconds max_age) = 0;
  // The current leader-lease epoch of `population` (0 when it never had a leader): what an
  // aggregator checks a RunShard's epoch against.
  virtual absl::StatusOr<uint64_t> LeaseEpoch(const std::string& population) = 0;
};

// Connects to `conninfo`'s database (libpq syntax), creating the store schema and the table if
// absent. UNIMPLEMENTED in a build without libpq; UNAVAILABLE: database.
absl::StatusOr<std::unique_ptr<AggregatorRegistry>> OpenAggregatorRegistry(
    const std::string& conninfo);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_AGGREGATOR_REGISTRY_H_
