#include "fedlora/coordinator/edge_server.h"

#include <atomic>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/coordinator/metrics_http.h"
#include "fedlora/coordinator/process_registry.h"
#include "fedlora/coordinator/state_folder.h"
#include "fedlora/coordinator/window_publisher.h"
#include "grpc_serving.h"

namespace fedlora::coordinator {

struct EdgeServer::Parts {
  std::unique_ptr<Store> store;
  std::unique_ptr<CoordinatorService> service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<MetricsHttpServer> http;
  std::unique_ptr<ProcessHeartbeat> beat;  // this edge's row in the process registry
  std::atomic<bool> stop{false};
  std::thread sweeper;
  bool shut_down = false;
};

absl::StatusOr<std::unique_ptr<EdgeServer>> EdgeServer::Start(EdgeServerOptions o) {
  FEDLORA_RETURN_IF_ERROR(internal::CheckPlaintextAllowed(o.insecure, o.listen));
  FEDLORA_ASSIGN_OR_RETURN(const std::string conninfo, StateStoreConninfo(o.state_dir));
  if (conninfo.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        o.state_dir, " is a single-host state folder (SQLite): edge processes serve multi-host "
        "populations only (hint: `fedlora coordinator run` serves this folder alone; "
        "`coordinator init --store CONNINFO` makes a multi-host one)"));
  }
  if (o.rounds.leader_roots_pem.empty()) {
    auto ca = ReadFileToString(o.state_dir + "/tls/ca.pem");
    if (ca.ok()) o.rounds.leader_roots_pem = *ca;
  }
  std::unique_ptr<EdgeServer> s(new EdgeServer());
  s->parts_ = std::make_unique<Parts>();
  Parts& p = *s->parts_;
  // Unfenced: an edge writes enrolments, release reports and its coin records, never a round.
  FEDLORA_ASSIGN_OR_RETURN(p.store, OpenPostgresStore(conninfo));
  s->metrics_ = std::make_unique<MetricsRegistry>();
  DefineEdgeMetrics(*s->metrics_);
  SetRoleMetric(*s->metrics_, kRoleEdge);
  s->rounds_ = std::make_unique<EdgeRounds>(p.store.get(), s->metrics_.get(), o.rounds);
  absl::Status first = s->rounds_->Poll();  // NOT_FOUND (no leader yet) is fine: it polls on
  if (!first.ok() && first.code() != absl::StatusCode::kNotFound) return first;
  std::string coordinator_id = "coordinator";
  if (auto id = p.store->GetMeta("coordinator_id"); id.ok()) coordinator_id = *id;
  p.service = std::make_unique<CoordinatorService>(
      static_cast<RoundBackend*>(s->rounds_.get()), p.store.get(), s->metrics_.get(), o.limits,
      coordinator_id);
  FEDLORA_ASSIGN_OR_RETURN(p.server, internal::StartCoordinatorGrpc(
                                         o.state_dir, o.listen, o.insecure, o.tls_cert,
                                         o.tls_key, o.limits, p.service.get(), &s->port_));
  if (!o.metrics_listen.empty()) {
    FEDLORA_ASSIGN_OR_RETURN(auto hp, internal::SplitHostPort(o.metrics_listen));
    FEDLORA_ASSIGN_OR_RETURN(p.http,
                             MetricsHttpServer::Start(s->metrics_.get(), hp.first, hp.second));
  }
  s->rounds_->Start();
  // Registered once it serves (`coordinator status` lists it, and probes its /healthz).
  FEDLORA_ASSIGN_OR_RETURN(std::shared_ptr<ProcessRegistry> registry,
                           OpenProcessRegistry(conninfo));
  ProcessHeartbeatOptions beat;
  beat.registry = std::move(registry);
  beat.log = o.rounds.log;
  FEDLORA_ASSIGN_OR_RETURN(
      p.beat,
      ProcessHeartbeat::Start(
          ThisProcess(kRoleEdge, AdvertisedAddress("", o.listen, s->port_),
                      p.http ? AdvertisedAddress("", o.metrics_listen, p.http->port()) : ""),
          std::move(beat)));
  p.sweeper = std::thread([&p] {
    while (!p.stop) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      p.service->SweepStalledDownloads();
    }
  });
  return s;
}

int EdgeServer::metrics_port() const {
  return parts_ && parts_->http ? parts_->http->port() : 0;
}

void EdgeServer::Shutdown() {
  if (!parts_ || parts_->shut_down) return;
  parts_->shut_down = true;
  parts_->stop = true;
  parts_->beat.reset();  // a clean stop leaves the registry at once
  if (rounds_) rounds_->Stop();
  if (parts_->server) {
    parts_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  if (parts_->sweeper.joinable()) parts_->sweeper.join();
  if (parts_->service) (void)parts_->service->FlushReleaseReports();
  parts_->http.reset();
}

EdgeServer::~EdgeServer() { Shutdown(); }

}  // namespace fedlora::coordinator
