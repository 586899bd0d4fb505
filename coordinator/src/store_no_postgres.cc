// A build without libpq (CMake did not find PostgreSQL): the multi-host entry points say so.
#include "fedlora/coordinator/aggregator_registry.h"
#include "fedlora/coordinator/leader_lease.h"
#include "fedlora/coordinator/process_registry.h"
#include "fedlora/coordinator/store.h"

namespace fedlora::coordinator {
namespace {

absl::Status NotBuilt() {
  return absl::UnimplementedError(
      "this fedlora was built without PostgreSQL support (hint: install libpq-dev, e.g. "
      "`bash scripts/setup.sh test`, and rebuild; `fedlora --version` says what a build has)");
}

}  // namespace

bool PostgresSupported() { return false; }

absl::StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string&,
                                                         const std::optional<StoreFence>&) {
  return NotBuilt();
}

absl::StatusOr<std::unique_ptr<LeaderLease>> OpenLeaderLease(const std::string&,
                                                             const std::string&) {
  return NotBuilt();
}

absl::StatusOr<std::unique_ptr<AggregatorRegistry>> OpenAggregatorRegistry(const std::string&) {
  return NotBuilt();
}

absl::StatusOr<std::unique_ptr<ProcessRegistry>> OpenProcessRegistry(const std::string&) {
  return NotBuilt();
}

}  // namespace fedlora::coordinator
