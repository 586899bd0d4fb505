// Every process of a multi-host population registers in its PostgreSQL database (table
// `processes`): the leader, its standbys, the edges and the aggregators, each with its role,
// the address devices reach it at, its metrics address, host, pid, fedlora version, and a
// heartbeat renewed about every second. Times are the database's `now()`, so hosts with skewed
// clocks agree on ages. `coordinator status` lists them (process_status.h); the leader hands
// shards to the aggregators whose heartbeat is fresh (AggregatorRegistry::Live). PostgreSQL
// only (docs/coordinator.md, "Status and health").
//
//   auto registry = OpenProcessRegistry(conninfo);
//   ProcessHeartbeatOptions o;
//   o.registry = std::move(*registry);
//   auto beat = ProcessHeartbeat::Start(ThisProcess("edge", "10.0.0.5:50061", "10.0.0.5:9465"), o);
//   ...                                   // beats every second on its own thread
//   beat.reset();                         // a clean stop removes the row
#ifndef FEDLORA_COORDINATOR_PROCESS_REGISTRY_H_
#define FEDLORA_COORDINATOR_PROCESS_REGISTRY_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedlora/coordinator/aggregator_registry.h"

namespace fedlora::coordinator {

inline constexpr char kRoleLeader[] = "leader";
inline constexpr char kRoleStandby[] = "standby";
inline constexpr char kRoleEdge[] = "edge";
inline constexpr char kRoleAggregator[] = "aggregator";

// How often a process renews its row; after how long without a beat `coordinator status`
// calls it stale (killed, paused, or cut off from the database) and gone; and when the
// leader deletes such a row.
inline constexpr std::chrono::milliseconds kProcessHeartbeatEvery{1000};
inline constexpr std::chrono::seconds kProcessStaleAfter{5};
inline constexpr std::chrono::seconds kProcessGoneAfter{60};
inline constexpr std::chrono::minutes kProcessPruneAfter{10};

// What a process says about itself.
struct ProcessRecord {
  std::string id;               // unique per process (a leader/standby: its lease holder name)
  std::string role;             // kRoleLeader, kRoleStandby, kRoleEdge, kRoleAggregator
  std::string address;          // HOST:PORT devices (and the leader) reach; "" for a standby
  std::string metrics_address;  // HOST:PORT of its /metrics and /healthz; "" = none
  std::string host;             // gethostname()
  int64_t pid = 0;
  std::string version;  // fedlora version
};

// A row as the database holds it now.
struct RegisteredProcess {
  ProcessRecord record;
  double uptime_seconds = 0;         // database clock: first registration to last beat
  double heartbeat_age_seconds = 0;  // database clock: since its last beat
};

// Thread-safe. Also the leader's AggregatorRegistry: Live(max_age) is the addresses of role
// "aggregator" whose heartbeat is at most max_age old.
class ProcessRegistry : public AggregatorRegistry {
 public:
  // Registers `self` or renews its heartbeat, role and addresses (upsert on id). The row's
  // start time is kept while host and pid stay the same, and reset otherwise (a new process
  // reusing a name). INVALID_ARGUMENT: empty id or unknown role.
  virtual absl::Status Heartbeat(const ProcessRecord& self) = 0;
  // Deletes `id`'s row (a clean stop). OK when absent.
  virtual absl::Status Remove(const std::string& id) = 0;
  // Every row, sorted by role (leader, standby, edge, aggregator), then id.
  virtual absl::StatusOr<std::vector<RegisteredProcess>> List() = 0;
  // Deletes rows whose heartbeat is older than `age`; returns how many.
  virtual absl::StatusOr<int> Prune(std::chrono::seconds age) = 0;
};

// Connects to `conninfo`'s database (libpq syntax), creating the store schema (which holds the
// `processes` table) if absent. UNIMPLEMENTED in a build without libpq; UNAVAILABLE: database.
absl::StatusOr<std::unique_ptr<ProcessRegistry>> OpenProcessRegistry(const std::string& conninfo);

// This process's record: host name, pid and version filled in; `id` "" = "ROLE:host:pid:8 hex
// digits" (random, so a reused pid on the same host is still a new id).
ProcessRecord ThisProcess(const std::string& role, const std::string& address,
                          const std::string& metrics_address, const std::string& id = "");

struct ProcessHeartbeatOptions {
  std::shared_ptr<ProcessRegistry> registry;  // shared with other users (e.g. LeaseEpoch)
  std::chrono::milliseconds every = kProcessHeartbeatEvery;
  // Failures of the beat (the database unreachable), once per different message.
  std::function<void(const std::string&)> log;
};

// Keeps one process's row fresh. The first beat happens inside Start (its outcome is
// last_status()); then one every `every` on a background thread; a failed beat is retried at
// the next. A leader's beat also prunes rows gone for kProcessPruneAfter (every 30 beats).
// Destruction stops the thread and removes the row (a clean stop).
class ProcessHeartbeat {
 public:
  // INVALID_ARGUMENT: no registry, or a record Heartbeat refuses.
  static absl::StatusOr<std::unique_ptr<ProcessHeartbeat>> Start(ProcessRecord self,
                                                                 ProcessHeartbeatOptions options);
  ~ProcessHeartbeat();
  ProcessHeartbeat(const ProcessHeartbeat&) = delete;
  ProcessHeartbeat& operator=(const ProcessHeartbeat&) = delete;

  // Changes the role and device-facing address (a coordinator taking or losing the lease) and
  // beats at once; returns that beat's outcome.
  absl::Status SetRole(const std::string& role, const std::string& address);
  absl::Status last_status() const;
  ProcessRecord record() const;

 private:
  ProcessHeartbeat(ProcessRecord self, ProcessHeartbeatOptions options);
  absl::Status Beat();

  const ProcessHeartbeatOptions o_;
  std::mutex beat_mu_;  // one beat at a time
  mutable std::mutex mu_;
  std::condition_variable wake_;
  ProcessRecord self_;
  absl::Status last_;
  std::string last_logged_;
  bool stop_ = false;
  int beats_ = 0;
  std::thread thread_;
};

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_PROCESS_REGISTRY_H_
