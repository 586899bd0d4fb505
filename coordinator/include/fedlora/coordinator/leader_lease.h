// Leadership of a population among coordinator processes that share one PostgreSQL database
// (multi-host mode, docs/coordinator.md "Multi-host (in progress)"). PostgreSQL only.
//
// One row per population in table `leader_leases`: holder, epoch, expiry. Time is the
// database's (`now()` in the statement that acquires or renews), never a process's clock, so
// hosts with skewed clocks agree on who leads. A lease can be taken over only once it has
// expired, and every takeover increments the epoch. The holder passes `fence()` to
// OpenPostgresStore: every write of that store checks, inside its own transaction, that the
// lease still carries the epoch, so a process paused past its lease (SIGSTOP, a long GC or
// swap) that wakes up after a successor took over cannot write anything.
//
//   auto lease = OpenLeaderLease(conninfo, "global");
//   if (*(*lease)->TryAcquire(holder_id, std::chrono::seconds(10))) {
//     auto store = OpenPostgresStore(conninfo, (*lease)->fence());
//     // renew every ttl/3; on FAILED_PRECONDITION ("fenced") from Renew or a write: step down
//   }
#ifndef FEDLORA_COORDINATOR_LEADER_LEASE_H_
#define FEDLORA_COORDINATOR_LEADER_LEASE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedlora/coordinator/store.h"

namespace fedlora::coordinator {

// The lease row as the database holds it now.
struct LeaseInfo {
  std::string population;
  std::string holder;
  uint64_t epoch = 0;
  double expires_in_seconds = 0;  // database clock; negative once expired
};

// Thread-safe.
class LeaderLease {
 public:
  virtual ~LeaderLease() = default;

  // Takes the lease for `holder` (a name unique to this process, e.g. host:pid:random) for
  // `ttl`, if no one holds it or its holder let it expire; the epoch then becomes the previous
  // one + 1 (1 for the first holder). Returns false, changing nothing, while another holder's
  // lease is valid (Current() says whose) or a writer holding the lease row did not finish
  // within a second. INVALID_ARGUMENT: empty holder, ttl under 100 ms. UNAVAILABLE: database.
  virtual absl::StatusOr<bool> TryAcquire(const std::string& holder,
                                          std::chrono::milliseconds ttl) = 0;
  // Extends the held lease to now + ttl (database clock). Succeeds while the row still carries
  // this object's epoch, even just past the expiry if no one took over. FAILED_PRECONDITION
  // "fenced: ..." when another holder took over (step down), or when never acquired.
  virtual absl::Status Renew() = 0;
  // Gives the lease up at once (expires it) if still held under this epoch, so a standby need
  // not wait for the ttl. OK if it was already taken over.
  virtual absl::Status Release() = 0;
  // The epoch this object acquired; 0 before a successful TryAcquire.
  virtual uint64_t epoch() const = 0;
  // {population, epoch()}: what OpenPostgresStore needs to fence its writes.
  virtual StoreFence fence() const = 0;
  // The local monotonic time until which the lease is surely still held: the start of the
  // last successful TryAcquire/Renew call plus ttl (the database's expiry is later or equal).
  virtual std::chrono::steady_clock::time_point valid_until() const = 0;
  // The row as stored. NOT_FOUND: no one ever acquired this population's lease.
  virtual absl::StatusOr<LeaseInfo> Current() const = 0;
};

// Connects to the database of `conninfo` (libpq syntax, as OpenPostgresStore), creating the
// store schema (which holds the lease table) if absent. INVALID_ARGUMENT: empty population;
// UNIMPLEMENTED: a build without libpq; other codes as OpenPostgresStore.
absl::StatusOr<std::unique_ptr<LeaderLease>> OpenLeaderLease(const std::string& conninfo,
                                                             const std::string& population);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_LEADER_LEASE_H_
