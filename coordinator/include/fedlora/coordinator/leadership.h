// A coordinator process's leadership in multi-host mode (docs/coordinator.md, "Multi-host"):
// a process whose state folder names a PostgreSQL store serves devices only while it holds
// the population's lease (leader_lease.h). Until then it is a warm standby that retries; once
// serving it renews every ttl/3 and steps down when fenced or when it could not renew within
// the ttl (database unreachable), so at most one process leads and a paused one cannot write.
//
//   auto lease = AwaitLeadership(opts, [] { return g_stop; });   // standby until it returns
//   server = CoordinatorServer::Start({... .lease = *lease});   // renews; lost_leadership()
#ifndef FEDLORA_COORDINATOR_LEADERSHIP_H_
#define FEDLORA_COORDINATOR_LEADERSHIP_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "fedlora/coordinator/leader_lease.h"

namespace fedlora::coordinator {

struct LeadershipOptions {
  std::string conninfo;               // the PostgreSQL store (state_folder.h StateStoreConninfo)
  std::string population = "global";  // one lease row per population
  std::string holder;                 // "" = DefaultHolderName()
  std::chrono::milliseconds ttl{10000};
  std::function<void(const std::string&)> log;  // "standby: ... leads (epoch N)" etc.
};

// host:pid:8 random hex digits: unique per process, readable in `coordinator status`.
std::string DefaultHolderName();

// Tries to take the lease every ttl/4 until it succeeds (returns the held lease) or `stop`
// returns true (CANCELLED). Database errors are logged and retried, never fatal: a standby
// outlives a database restart. INVALID_ARGUMENT for a ttl under 1 s; UNIMPLEMENTED without
// libpq.
absl::StatusOr<std::shared_ptr<LeaderLease>> AwaitLeadership(const LeadershipOptions& options,
                                                             const std::function<bool()>& stop);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_LEADERSHIP_H_
