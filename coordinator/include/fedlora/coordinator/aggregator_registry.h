// What the leader and an aggregator read about a multi-host population (docs/coordinator.md,
// "Aggregator processes"): the live aggregators, from the one process registry
// (process_registry.h: rows of role "aggregator" whose heartbeat is fresh on the database
// clock), and the current leader-lease epoch. PostgreSQL only.
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
  // Device-facing addresses of the aggregators whose heartbeat is at most `max_age` old,
  // sorted.
  virtual absl::StatusOr<std::vector<std::string>> Live(std::chrono::milliseconds max_age) = 0;
  // The current leader-lease epoch of `population` (0 when it never had a leader): what an
  // aggregator checks a RunShard's epoch against.
  virtual absl::StatusOr<uint64_t> LeaseEpoch(const std::string& population) = 0;
};

// OpenProcessRegistry (process_registry.h) seen as an AggregatorRegistry. UNIMPLEMENTED in a
// build without libpq; UNAVAILABLE: database.
absl::StatusOr<std::unique_ptr<AggregatorRegistry>> OpenAggregatorRegistry(
    const std::string& conninfo);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_AGGREGATOR_REGISTRY_H_
