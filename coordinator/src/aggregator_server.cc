#include "fedlora/coordinator/aggregator_server.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/coordinator/aggregator_registry.h"
#include "fedlora/coordinator/cluster_key.h"
#include "fedlora/coordinator/metrics_http.h"
#include "fedlora/coordinator/process_registry.h"
#include "fedlora/coordinator/state_folder.h"
#include "fedlora/coordinator/window_publisher.h"
#include "fedlora/proto/fedlora_v1.grpc.pb.h"
#include "grpc_serving.h"

namespace fedlora::coordinator {
namespace internal {

// fedlora.v1.Aggregator: the leader's RunShard.
class AggregatorService final : public v1::Aggregator::CallbackService {
 public:
  AggregatorService(AggregatorRounds* rounds, AggregatorRegistry* registry,
                    MetricsRegistry* metrics, std::string population, std::string cluster_key)
      : rounds_(rounds),
        registry_(registry),
        metrics_(metrics),
        population_(std::move(population)),
        cluster_key_(std::move(cluster_key)) {}

  grpc::ServerUnaryReactor* RunShard(grpc::CallbackServerContext* ctx,
                                     const v1::RunShardRequest* request,
                                     v1::RunShardResponse* response) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    // The leader's credential first, before anything is read or started: TLS authenticates
    // this aggregator to the caller, not the caller, and the epoch is no secret.
    if (absl::Status a = CheckRunShardMac(cluster_key_, *request, LeaderMac(*ctx)); !a.ok()) {
      metrics_->Increment("fedlora_aggregator_shards_total", {"unauthenticated"});
      reactor->Finish(ToGrpcStatus(a));
      return reactor;
    }
    absl::Status s = Check(*request);
    if (s.ok()) {
      s = rounds_->Host(ShardSpecFromProto(*request), [reactor, response, metrics = metrics_](
                                                          absl::StatusOr<ShardSum> sum) {
        metrics->Increment("fedlora_aggregator_shards_total", {sum.ok() ? "summed" : "dropped"});
        if (!sum.ok()) return reactor->Finish(ToGrpcStatus(sum.status()));
        for (uint32_t v : sum->sum) response->add_sum(v);
        response->set_survivors(sum->survivors);
        reactor->Finish(grpc::Status::OK);
      });
    }
    if (!s.ok()) {
      metrics_->Increment("fedlora_aggregator_shards_total", {"refused"});
      reactor->Finish(ToGrpcStatus(s));
    }
    return reactor;
  }

 private:
  // The assignment must come from the population's current leader: a leader fenced out by a
  // successor (paused past its lease) cannot start shards.
  absl::Status Check(const v1::RunShardRequest& r) {
    if (r.population() != population_) {
      return absl::InvalidArgumentError(absl::StrCat("this aggregator serves population '",
                                                     population_, "', not '", r.population(), "'"));
    }
    FEDLORA_ASSIGN_OR_RETURN(uint64_t current, registry_->LeaseEpoch(population_));
    if (r.epoch() != current) {
      return absl::FailedPreconditionError(absl::StrCat(
          "fenced: the shard's leader holds epoch ", r.epoch(), " but the lease of population '",
          population_, "' is at epoch ", current, "; only the current leader assigns shards"));
    }
    return absl::OkStatus();
  }

  static std::optional<std::string> LeaderMac(const grpc::CallbackServerContext& ctx) {
    const auto& md = ctx.client_metadata();
    auto it = md.find(kLeaderMacMetadata);
    if (it == md.end()) return std::nullopt;
    return std::string(it->second.data(), it->second.size());
  }

  AggregatorRounds* rounds_;
  AggregatorRegistry* registry_;
  MetricsRegistry* metrics_;
  std::string population_;
  const std::string cluster_key_;
};

}  // namespace internal

using internal::AggregatorService;

struct AggregatorServer::Parts {
  std::unique_ptr<Store> store;
  std::shared_ptr<ProcessRegistry> registry;  // the lease epoch; its heartbeat's registry
  std::unique_ptr<CoordinatorService> service;
  std::unique_ptr<AggregatorService> internal;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<MetricsHttpServer> http;
  std::unique_ptr<ProcessHeartbeat> beat;  // this aggregator's row (role aggregator)
  bool shut_down = false;
};

absl::StatusOr<std::unique_ptr<AggregatorServer>> AggregatorServer::Start(
    AggregatorServerOptions o) {
  FEDLORA_RETURN_IF_ERROR(internal::CheckPlaintextAllowed(o.insecure, o.listen));
  FEDLORA_ASSIGN_OR_RETURN(const std::string conninfo, StateStoreConninfo(o.state_dir));
  if (conninfo.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        o.state_dir,
        " is a single-host state folder (SQLite): aggregator processes serve "
        "multi-host populations only (hint: `coordinator init --store CONNINFO` makes one)"));
  }
  std::unique_ptr<AggregatorServer> s(new AggregatorServer());
  s->parts_ = std::make_unique<Parts>();
  Parts& p = *s->parts_;
  // Unfenced: an aggregator reads devices' keys; it writes only its heartbeat.
  FEDLORA_ASSIGN_OR_RETURN(p.store, OpenPostgresStore(conninfo));
  FEDLORA_ASSIGN_OR_RETURN(p.registry, OpenProcessRegistry(conninfo));
  s->metrics_ = std::make_unique<MetricsRegistry>();
  DefineCoordinatorMetrics(*s->metrics_);
  SetRoleMetric(*s->metrics_, kRoleAggregator);
  s->metrics_->DefineCounter("fedlora_aggregator_shards_total",
                             "Shards this aggregator was handed, by outcome (summed, dropped, "
                             "refused, unauthenticated)",
                             {"outcome"});
  s->rounds_ = std::make_unique<AggregatorRounds>();
  std::string coordinator_id = "coordinator";
  if (auto id = p.store->GetMeta("coordinator_id"); id.ok()) coordinator_id = *id;
  p.service = std::make_unique<CoordinatorService>(static_cast<RoundBackend*>(s->rounds_.get()),
                                                   p.store.get(), s->metrics_.get(), o.limits,
                                                   coordinator_id);
  FEDLORA_ASSIGN_OR_RETURN(std::string cluster_key, ReadClusterKey(o.state_dir));
  p.internal = std::make_unique<AggregatorService>(s->rounds_.get(), p.registry.get(),
                                                   s->metrics_.get(), o.population,
                                                   std::move(cluster_key));
  FEDLORA_ASSIGN_OR_RETURN(p.server, internal::StartCoordinatorGrpc(
                                         o.state_dir, o.listen, o.insecure, o.tls_cert, o.tls_key,
                                         o.limits, p.service.get(), &s->port_, p.internal.get()));
  s->address_ = AdvertisedAddress(o.advertise, o.listen, s->port_);
  if (!o.metrics_listen.empty()) {
    FEDLORA_ASSIGN_OR_RETURN(auto hp, internal::SplitHostPort(o.metrics_listen));
    FEDLORA_ASSIGN_OR_RETURN(p.http,
                             MetricsHttpServer::Start(s->metrics_.get(), hp.first, hp.second));
  }
  s->rounds_->Start();
  // Registered only once it serves: a leader never hands a shard to an address not yet bound.
  ProcessHeartbeatOptions beat;
  beat.registry = p.registry;
  beat.every = o.heartbeat;
  FEDLORA_ASSIGN_OR_RETURN(
      p.beat,
      ProcessHeartbeat::Start(
          ThisProcess(kRoleAggregator, s->address_,
                      p.http ? AdvertisedAddress("", o.metrics_listen, p.http->port()) : ""),
          std::move(beat)));
  FEDLORA_RETURN_IF_ERROR(p.beat->last_status());
  return s;
}

int AggregatorServer::metrics_port() const {
  return parts_ && parts_->http ? parts_->http->port() : 0;
}

void AggregatorServer::Shutdown() {
  if (!parts_ || parts_->shut_down) return;
  Parts& p = *parts_;
  p.shut_down = true;
  p.beat.reset();                // unregisters: no leader hands it another shard
  if (rounds_) rounds_->Stop();  // answers the leader's RunShard calls and devices' calls
  if (p.server) p.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  p.http.reset();
}

AggregatorServer::~AggregatorServer() { Shutdown(); }

}  // namespace fedlora::coordinator
