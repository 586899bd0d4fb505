#include "fedlora/coordinator/coordinator_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/net_address.h"
#include "fedlora/common/process_lock.h"
#include "fedlora/common/random.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/coordinator/aggregator_client.h"
#include "fedlora/coordinator/cluster_key.h"
#include "fedlora/coordinator/leadership.h"
#include "fedlora/coordinator/metrics_http.h"
#include "fedlora/coordinator/state_folder.h"
#include "fedlora/coordinator/pinned_params.h"
#include "fedlora/coordinator/process_registry.h"
#include "fedlora/coordinator/window_publisher.h"
#include "grpc_serving.h"

namespace fedlora::coordinator {

struct CoordinatorServer::Parts {
  std::unique_ptr<ProcessLock> lock;  // the state folder's, held while the server lives
  SecureRandom rng;
  std::unique_ptr<Store> store;
  std::unique_ptr<CoordinatorService> service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<MetricsHttpServer> http;
  std::atomic<bool> stop{false};
  std::thread sweeper;
  bool shut_down = false;
  // Multi-host mode: the held lease and its renewer.
  std::shared_ptr<LeaderLease> lease;
  std::chrono::milliseconds lease_ttl{0};
  std::thread renewer;
  std::shared_ptr<ShardDispatcher> dispatcher;  // aggregator processes (multi-host)
  std::atomic<bool> lost{false};
  mutable absl::Mutex lost_mu;
  std::string lost_reason;

  void LoseLeadership(const std::string& why, const std::function<void(const std::string&)>& log) {
    {
      absl::MutexLock l(&lost_mu);
      if (lost) return;
      lost_reason = why;
      lost = true;
    }
    if (log) log(absl::StrCat("stepping down: ", why));
  }
};

absl::StatusOr<std::unique_ptr<ProcessLock>> LockStateFolder(const std::string& state_dir) {
  pid_t holder = 0;
  auto lock = ProcessLock::Acquire(state_dir + "/" + kStateLockFile, &holder);
  if (lock.ok() || lock.status().code() != absl::StatusCode::kFailedPrecondition) return lock;
  return absl::FailedPreconditionError(absl::StrCat(
      "state folder ", state_dir, " is in use by another coordinator",
      holder > 0 ? absl::StrCat(" (pid ", holder, ")") : std::string(),
      " (hint: stop that coordinator first; only one `coordinator run` may serve a state "
      "folder; `coordinator status` is safe alongside it)"));
}

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(ServerOptions o) {
  // Debian's abseil is built with mutex deadlock detection on: it records every lock-order
  // edge in a global graph, a measurable cost on the hot path of thousands of calls per
  // second. The coordinator's lock order is fixed (manager, then store), so it is switched off.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  FEDLORA_RETURN_IF_ERROR(internal::CheckPlaintextAllowed(o.insecure, o.listen));
  std::unique_ptr<CoordinatorServer> s(new CoordinatorServer());
  s->parts_ = std::make_unique<Parts>();
  Parts& p = *s->parts_;
  auto leader = std::make_shared<std::string>();  // the address edges forward to, once bound
  FEDLORA_ASSIGN_OR_RETURN(const std::string conninfo, StateStoreConninfo(o.state_dir));
  if (conninfo.empty()) {
    FEDLORA_ASSIGN_OR_RETURN(p.store, OpenSqliteStore(o.state_dir));
    // One coordinator per folder: a second one would recover (abort) the first one's running
    // round and serve beside it. Taken before anything but the store's own checks and migration.
    FEDLORA_ASSIGN_OR_RETURN(p.lock, LockStateFolder(o.state_dir));
  } else {
    // The leader's credential towards its aggregators (cluster_key.h); a folder made before it
    // is refused with the command that adds one, before this process takes the lease.
    FEDLORA_ASSIGN_OR_RETURN(std::string cluster_key, ReadClusterKey(o.state_dir));
    // Multi-host: the lease, not a folder lock, makes this process the one that serves; every
    // write of the store checks the lease's epoch inside its transaction.
    if (!o.lease) {
      FEDLORA_ASSIGN_OR_RETURN(std::unique_ptr<LeaderLease> lease,
                               OpenLeaderLease(conninfo, "global"));
      FEDLORA_ASSIGN_OR_RETURN(bool got, lease->TryAcquire(DefaultHolderName(), o.lease_ttl));
      if (!got) {
        auto cur = lease->Current();
        return absl::FailedPreconditionError(absl::StrCat(
            "the population of ", o.state_dir, " is led by another coordinator",
            cur.ok() ? absl::StrCat(" (", cur->holder, ", epoch ", cur->epoch, ")") : "",
            " (hint: `coordinator run` waits as a standby and takes over when its lease "
            "expires)"));
      }
      o.lease = std::move(lease);
    }
    p.lease = o.lease;
    p.lease_ttl = o.lease_ttl;
    FEDLORA_ASSIGN_OR_RETURN(p.store, OpenPostgresStore(conninfo, p.lease->fence()));
    // Edge processes (edge_rounds.h) answer check-ins from the windows published here.
    InstallWindowPublisher(&o.coordinator, p.store.get(), leader, !o.insecure);
    // Aggregator processes (aggregator_client.h) run the shards of sharded rounds when live.
    if (!o.coordinator.shard_dispatcher) {
      FEDLORA_ASSIGN_OR_RETURN(auto registry, OpenAggregatorRegistry(conninfo));
      AggregatorClientOptions ao;
      ao.epoch = [lease = p.lease] { return lease->epoch(); };
      ao.cluster_key = std::move(cluster_key);
      ao.log = o.coordinator.log;
      ao.insecure = o.insecure;
      if (auto ca = ReadFileToString(o.state_dir + "/tls/ca.pem"); ca.ok()) ao.roots_pem = *ca;
      FEDLORA_ASSIGN_OR_RETURN(o.coordinator.shard_dispatcher,
                               MakeGrpcShardDispatcher(std::move(registry), std::move(ao)));
    }
    p.dispatcher = o.coordinator.shard_dispatcher;
  }
  bool pinned_now = false;
  FEDLORA_RETURN_IF_ERROR(CheckPinnedPrivacyParams(*p.store, o.coordinator, &pinned_now));
  if (pinned_now && o.coordinator.log) {
    o.coordinator.log(
        "privacy parameters pinned for this population (a folder made before "
        "pinning: its current coordinator.json is what it keeps)");
  }
  s->metrics_ = std::make_unique<MetricsRegistry>();
  DefineCoordinatorMetrics(*s->metrics_);
  SetRoleMetric(*s->metrics_, kRoleLeader);  // also a single-host coordinator: it leads
  auto devices = p.store->ListDevices();
  if (devices.ok()) s->metrics_->Set("fedlora_enrolled_devices", double(devices->size()));
  FEDLORA_ASSIGN_OR_RETURN(s->rounds_, RoundManager::Create(o.coordinator, p.store.get(),
                                                            s->metrics_.get(), &p.rng));
  std::string coordinator_id = "coordinator";
  if (auto id = p.store->GetMeta("coordinator_id"); id.ok()) coordinator_id = *id;
  p.service = std::make_unique<CoordinatorService>(s->rounds_.get(), p.store.get(),
                                                   s->metrics_.get(), o.limits, coordinator_id);

  FEDLORA_ASSIGN_OR_RETURN(p.server,
                           internal::StartCoordinatorGrpc(o.state_dir, o.listen, o.insecure,
                                                          o.tls_cert, o.tls_key, o.limits,
                                                          p.service.get(), &s->port_));
  *leader = AdvertisedAddress(o.advertise, o.listen, s->port_);
  if (!o.metrics_listen.empty()) {
    FEDLORA_ASSIGN_OR_RETURN(auto hp, internal::SplitHostPort(o.metrics_listen));
    FEDLORA_ASSIGN_OR_RETURN(p.http, MetricsHttpServer::Start(s->metrics_.get(), hp.first, hp.second));
  }
  s->rounds_->Start();
  if (p.lease) {
    // Renew every ttl/3; fenced (a successor took over) or not renewed within the ttl (the
    // database unreachable for that long: a standby may already lead): step down. The next
    // renewal is due ttl/3 after the last one started, on the monotonic clock: a thread woken
    // late (a loaded machine, a paused process or VM) renews at once instead of sleeping out
    // a count of short naps that no longer adds up to the time that passed.
    auto log = o.coordinator.log;
    p.renewer = std::thread([&p, log] {
      const auto every = std::max(p.lease_ttl / 3, std::chrono::milliseconds(100));
      auto due = std::chrono::steady_clock::now() + every;
      while (!p.stop && !p.lost) {
        while (!p.stop && std::chrono::steady_clock::now() < due) {
          std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
              std::chrono::milliseconds(50), due - std::chrono::steady_clock::now()));
        }
        if (p.stop) break;
        const auto asked = std::chrono::steady_clock::now();
        due = asked + every;
        const absl::Status renewed = p.lease->Renew();
        const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - asked);
        if (renewed.code() == absl::StatusCode::kFailedPrecondition) {
          p.LoseLeadership(std::string(renewed.message()), log);
        } else if (!renewed.ok() && std::chrono::steady_clock::now() >= p.lease->valid_until()) {
          p.LoseLeadership(absl::StrCat("the lease could not be renewed within its ttl (",
                                        renewed.ToString(), ")"),
                           log);
        } else if (log && (!renewed.ok() || took > p.lease_ttl / 3)) {
          // Late or failed renewals are what a too-short --lease-ttl looks like before a
          // standby takes over: say so while this process still leads.
          log(absl::StrCat("lease renewal ", renewed.ok() ? "succeeded" : "failed", " after ",
                           took.count(), " ms",
                           renewed.ok() ? "" : absl::StrCat(" (", renewed.ToString(), ")"),
                           "; the lease ttl is ", p.lease_ttl.count(), " ms"));
        }
      }
    });
  }
  p.sweeper = std::thread([&p] {
    while (!p.stop) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      p.service->SweepStalledDownloads();
    }
  });
  return s;
}

absl::Status CoordinatorServer::FlushReleaseReports() {
  if (!parts_ || !parts_->service) return absl::OkStatus();
  return parts_->service->FlushReleaseReports();
}

bool CoordinatorServer::lost_leadership() const { return parts_ && parts_->lost; }

std::string CoordinatorServer::lost_leadership_reason() const {
  if (!parts_) return "";
  absl::MutexLock l(&parts_->lost_mu);
  return parts_->lost_reason;
}

int CoordinatorServer::metrics_port() const {
  return parts_ && parts_->http ? parts_->http->port() : 0;
}

void CoordinatorServer::Shutdown() {
  if (!parts_ || parts_->shut_down) return;
  parts_->shut_down = true;
  parts_->stop = true;
  // Stop the rounds first: waiting calls are answered by gRPC's shutdown deadline. A server
  // whose Start failed part-way has only some of its parts. Shards at aggregators are given up
  // (the round's finish would otherwise wait out their deadlines; the round is aborted).
  if (parts_->dispatcher) parts_->dispatcher->CancelAll();
  if (rounds_) {
    rounds_->Stop();
    rounds_->Drain();
  }
  if (parts_->server) {
    parts_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  if (parts_->sweeper.joinable()) parts_->sweeper.join();
  if (parts_->renewer.joinable()) parts_->renewer.join();
  // A clean stop hands over at once: a standby need not wait for the ttl.
  if (parts_->lease && !parts_->lost) (void)parts_->lease->Release();
  if (parts_->service) (void)parts_->service->FlushReleaseReports();
  parts_->http.reset();
}

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

}  // namespace fedlora::coordinator
