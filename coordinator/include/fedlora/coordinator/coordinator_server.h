// The coordinator process: the store under --state, the round manager, the gRPC service (TLS by
// default; plaintext only on loopback), the gRPC health and reflection services, and the
// Prometheus /metrics endpoint.
//
//   auto server = CoordinatorServer::Start(options);   // listening when it returns
//   server->rounds().WaitUntilFinished(absl::Hours(1));
//   server->Shutdown();
#ifndef FEDLORA_COORDINATOR_COORDINATOR_SERVER_H_
#define FEDLORA_COORDINATOR_COORDINATOR_SERVER_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "fedlora/common/process_lock.h"
#include "fedlora/coordinator/grpc_service.h"
#include "fedlora/coordinator/leader_lease.h"
#include "fedlora/coordinator/round_manager.h"

namespace fedlora::coordinator {

// The lock file in a state folder; holds the serving coordinator's pid.
inline constexpr char kStateLockFile[] = "coordinator.lock";

// Takes the exclusive lock on `state_dir` that a serving coordinator holds for its lifetime
// (ProcessLock on DIR/coordinator.lock). FAILED_PRECONDITION when another coordinator holds
// it: "state folder DIR is in use by another coordinator (pid N) (hint: ...)".
absl::StatusOr<std::unique_ptr<ProcessLock>> LockStateFolder(const std::string& state_dir);

struct ServerOptions {
  std::string state_dir;
  std::string listen = "127.0.0.1:50051";  // host:port; port 0 picks a free one
  bool insecure = false;     // plaintext: refused unless `listen` is a loopback address
  std::string tls_cert;      // PEM; default <state>/tls/server.pem
  std::string tls_key;       // PEM; default <state>/tls/server.key
  std::string metrics_listen;  // host:port for /metrics; empty = off; port 0 picks one
  CoordinatorOptions coordinator;
  ServiceLimits limits;
  // Multi-host mode (the state folder's `store` file names PostgreSQL): the lease this process
  // holds (AwaitLeadership, leadership.h). The store's writes are fenced with its epoch, the
  // server renews it every ttl/3 and reports lost_leadership() when fenced or not renewed
  // within the ttl. Null in multi-host mode: Start tries once to take it (holder
  // DefaultHolderName(), `lease_ttl`) and fails with FAILED_PRECONDITION naming the leader.
  std::shared_ptr<LeaderLease> lease;
  std::chrono::milliseconds lease_ttl{10000};
  // Multi-host: the HOST:PORT edge processes forward sampled check-ins and secure-aggregation
  // calls to (published with each selection window); "" = the listen address with the bound
  // port (a wildcard host as 127.0.0.1).
  std::string advertise;
};

class CoordinatorServer {
 public:
  // Errors: the store's (unreadable folder), FAILED_PRECONDITION for a folder without an
  // initial adapter, a folder another coordinator serves (LockStateFolder) or plaintext on a
  // non-loopback address, NOT_FOUND for missing TLS files
  // (with the hint to run `coordinator init` or pass --tls-cert/--tls-key), UNAVAILABLE when
  // the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(ServerOptions options);
  ~CoordinatorServer();

  int port() const { return port_; }
  // Multi-host mode: true once this process may no longer lead (fenced by a successor, or the
  // lease not renewed within its ttl); the owner then calls Shutdown and, if it wants to stay
  // a standby, AwaitLeadership again. `lost_leadership_reason()` says why. Never true on SQLite.
  bool lost_leadership() const;
  std::string lost_leadership_reason() const;
  int metrics_port() const;
  RoundManager& rounds() { return *rounds_; }
  MetricsRegistry& metrics() { return *metrics_; }
  // Writes the release reports GetRelease kept so far (written behind, every
  // limits.release_report_interval) to the store now.
  absl::Status FlushReleaseReports();
  // Stops accepting calls, cancels the ones waiting (deadline 2 s), stops the rounds (a
  // round's finish already running completes first), writes the kept release reports.
  void Shutdown();

 private:
  CoordinatorServer() = default;
  struct Parts;
  std::unique_ptr<Parts> parts_;
  std::unique_ptr<MetricsRegistry> metrics_;
  std::unique_ptr<RoundManager> rounds_;
  int port_ = 0;
};

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_COORDINATOR_SERVER_H_
