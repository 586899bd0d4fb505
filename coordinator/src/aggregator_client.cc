#include "fedlora/coordinator/aggregator_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "fedlora/coordinator/cluster_key.h"
#include "fedlora/proto/fedlora_v1.grpc.pb.h"

namespace fedlora::coordinator {
namespace {

absl::Status RunShardStatus(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

class GrpcRemoteShard final : public RemoteShard {
 public:
  grpc::ClientContext ctx;
  v1::RunShardRequest request;
  v1::RunShardResponse response;
  std::promise<grpc::Status> finished;
  std::shared_future<grpc::Status> result = finished.get_future().share();

  absl::StatusOr<ShardSum> Wait(absl::Time deadline) override {
    const auto until = absl::ToChronoTime(deadline);
    if (result.wait_until(until) != std::future_status::ready) {
      ctx.TryCancel();
      result.wait();
      return absl::DeadlineExceededError("the aggregator did not answer by the shard's deadline");
    }
    const grpc::Status s = result.get();
    if (!s.ok()) return RunShardStatus(s);
    ShardSum sum;
    sum.sum.assign(response.sum().begin(), response.sum().end());
    sum.survivors = response.survivors();
    return sum;
  }
};

class GrpcShardDispatcher final : public ShardDispatcher {
 public:
  GrpcShardDispatcher(std::unique_ptr<AggregatorRegistry> registry, AggregatorClientOptions o)
      : registry_(std::move(registry)), o_(std::move(o)) {
    Refresh();
    refresher_ = std::thread([this] {
      std::unique_lock<std::mutex> l(mu_);
      while (!stop_) {
        wake_.wait_for(l, o_.refresh);
        if (stop_) break;
        l.unlock();
        Refresh();
        l.lock();
      }
    });
  }
  ~GrpcShardDispatcher() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    refresher_.join();
  }

  void CancelAll() override {
    std::vector<std::shared_ptr<GrpcRemoteShard>> live;
    {
      std::lock_guard<std::mutex> l(mu_);
      cancelled_ = true;
      for (auto& c : calls_) {
        if (auto p = c.lock()) live.push_back(std::move(p));
      }
    }
    for (auto& c : live) c->ctx.TryCancel();
  }

  std::vector<std::string> Aggregators() override {
    std::lock_guard<std::mutex> l(mu_);
    return live_;
  }

  std::shared_ptr<RemoteShard> Run(const std::string& address, const ShardSpec& spec) override {
    auto call = std::make_shared<GrpcRemoteShard>();
    {
      std::lock_guard<std::mutex> l(mu_);
      if (cancelled_) {
        call->finished.set_value(grpc::Status(grpc::StatusCode::CANCELLED, "leader stopping"));
        return call;
      }
      calls_.erase(
          std::remove_if(calls_.begin(), calls_.end(),
                         [](const std::weak_ptr<GrpcRemoteShard>& c) { return c.expired(); }),
          calls_.end());
      calls_.push_back(call);
    }
    call->request = ShardSpecToProto(spec);
    call->request.set_population(o_.population);
    call->request.set_epoch(o_.epoch ? o_.epoch() : 0);
    absl::StatusOr<std::string> mac = RunShardMac(o_.cluster_key, call->request);
    if (!mac.ok()) {
      call->finished.set_value(grpc::Status(grpc::StatusCode::INTERNAL, mac.status().ToString()));
      return call;
    }
    call->ctx.AddMetadata(kLeaderMacMetadata, *mac);
    const absl::Duration longest = spec.advertise_deadline + 4 * spec.phase_deadline;
    call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + longest));
    Stub(address)->async()->RunShard(
        &call->ctx, &call->request, &call->response,
        [call, address, log = o_.log, round = spec.round, shard = spec.shard](grpc::Status s) {
          // An operator's mistake, not a device's: say where and what to do (the aggregator's
          // message names no count).
          if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED && log) {
            log(absl::StrCat("aggregator ", address, " refused shard ", shard, " of round ",
                             round, ": ", s.error_message()));
          }
          call->finished.set_value(s);
        });
    return call;
  }

 private:
  void Refresh() {
    auto live = registry_->Live(o_.max_age);
    std::lock_guard<std::mutex> l(mu_);
    if (live.ok()) live_ = std::move(*live);  // a database hiccup keeps the last list
  }

  v1::Aggregator::Stub* Stub(const std::string& address) {
    std::lock_guard<std::mutex> l(mu_);
    auto& stub = stubs_[address];
    if (!stub) {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(-1);
      args.SetMaxSendMessageSize(-1);
      std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
      if (!o_.insecure) {
        grpc::SslCredentialsOptions ssl;
        ssl.pem_root_certs = o_.roots_pem;
        creds = grpc::SslCredentials(ssl);
      }
      stub = v1::Aggregator::NewStub(grpc::CreateCustomChannel(address, creds, args));
    }
    return stub.get();
  }

  std::unique_ptr<AggregatorRegistry> registry_;
  const AggregatorClientOptions o_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool cancelled_ = false;
  std::vector<std::weak_ptr<GrpcRemoteShard>> calls_;  // RunShard calls, for CancelAll
  std::vector<std::string> live_;
  std::map<std::string, std::unique_ptr<v1::Aggregator::Stub>> stubs_;
  std::thread refresher_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<ShardDispatcher>> MakeGrpcShardDispatcher(
    std::unique_ptr<AggregatorRegistry> registry, AggregatorClientOptions options) {
  if (!registry) return absl::InvalidArgumentError("no aggregator registry");
  return std::shared_ptr<ShardDispatcher>(
      new GrpcShardDispatcher(std::move(registry), std::move(options)));
}

}  // namespace fedlora::coordinator
