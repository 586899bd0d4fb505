#include "fedlora/coordinator/aggregator_rounds.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fedlora/secagg/server.h"
#include "round_context.h"
#include "shard_phase.h"

namespace fedlora::coordinator {

struct AggregatorRounds::Hosted {
  ShardSpec spec;
  ShardDone done;
  std::unique_ptr<CollectingSender> sender;
  std::unique_ptr<secagg::SecAggServer> server;
  secagg::Phase phase = secagg::Phase::kAdvertiseKeys;
  absl::Time deadline;
  std::map<std::string, uint32_t> ids;          // device id -> session index
  std::map<std::string, PendingReply> pending;  // replies owed when the phase closes
};

namespace {

using AggCompletions = std::vector<std::function<void()>>;

void ReplyHosted(AggCompletions& out, PendingReply& p, v1::SecAggDownload d) {
  out.push_back([done = std::move(p.done), d = std::move(d)] { done(absl::OkStatus(), d); });
}

v1::SecAggDownload HostedAborted(std::string detail) {
  v1::SecAggDownload d;
  d.set_status(v1::SecAggDownload::STATUS_ABORTED);
  d.set_detail(std::move(detail));
  return d;
}

}  // namespace

AggregatorRounds::AggregatorRounds(std::function<absl::Time()> clock) : clock_(std::move(clock)) {}

AggregatorRounds::~AggregatorRounds() { Stop(); }

absl::Time AggregatorRounds::Now() const { return clock_ ? clock_() : absl::Now(); }

absl::Status AggregatorRounds::Host(const ShardSpec& spec, ShardDone done) {
  if (spec.devices.size() != spec.session.num_devices()) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard ", spec.shard, " of round ", spec.round, " names ", spec.devices.size(),
                     " devices for a session of ", spec.session.num_devices()));
  }
  auto h = std::make_unique<Hosted>();
  h->spec = spec;
  h->done = std::move(done);
  h->sender = std::make_unique<CollectingSender>();
  auto server = secagg::SecAggServer::Create(spec.session, h->sender.get());
  if (!server.ok()) return absl::InvalidArgumentError(server.status().message());
  h->server = std::move(*server);
  for (uint32_t i = 0; i < spec.devices.size(); ++i) h->ids[spec.devices[i]] = i;
  if (h->ids.size() != spec.devices.size()) {
    return absl::InvalidArgumentError("a device is named twice in the shard");
  }
  std::lock_guard<std::mutex> lock(mu_);
  const Key key{spec.round, spec.shard};
  if (stop_) return absl::UnavailableError("aggregator shutting down");
  if (shards_.count(key)) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard ", spec.shard, " of round ", spec.round, " is already running here"));
  }
  h->deadline = Now() + spec.advertise_deadline;
  for (const std::string& d : spec.devices) where_[{d, spec.round}] = key;
  shards_[key] = std::move(h);
  return absl::OkStatus();
}

void AggregatorRounds::CheckIn(const SignedCall&, const v1::CheckInRequest&,
                               RoundManager::CheckInDone done) {
  done(absl::FailedPreconditionError(
           "this is an aggregator process: it runs secure aggregation only (hint: check in at "
           "the coordinator or an edge)"),
       {});
}

void AggregatorRounds::SecAgg(const SignedCall& call, secagg::Phase phase,
                              const v1::SecAggUpload& upload, const std::string& digest,
                              RoundManager::SecAggDone done) {
  absl::Status refused;
  AggCompletions out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto w = where_.find({call.device_id, upload.round()});
    if (w == where_.end()) {
      // The leader's RunShard may still be on its way (the task went out just before it).
      refused = absl::UnavailableError(absl::StrCat(
          "device ", call.device_id, " has no shard of round ", upload.round(),
          " running at this aggregator (yet); retry, or check in again for a new task"));
    } else {
      Hosted& h = *shards_.at(w->second);
      const uint32_t id = h.ids.at(call.device_id);
      if (upload.message().device() != id) {
        refused = absl::PermissionDeniedError(
            absl::StrCat("message names secure-aggregation device ", upload.message().device(),
                         " but this device is ", id));
      } else if (phase != h.phase) {
        refused = absl::FailedPreconditionError(absl::StrCat(
            "wrong phase: ", secagg::PhaseName(phase), " called while shard ", h.spec.shard,
            " of round ", h.spec.round, " is in ", secagg::PhaseName(h.phase)));
      } else {
        (void)AcceptShardMessage(*h.server, h.pending, call.device_id, upload.message(), digest,
                                 done, out, &refused);
      }
    }
  }
  for (auto& f : out) f();
  if (!refused.ok()) done(refused, {});
}

void AggregatorRounds::Tick(absl::Time now) {
  AggCompletions out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = shards_.begin(); it != shards_.end();) {
      Hosted& h = *it->second;
      if (now < h.deadline && h.server->NumPending() > 0) {
        ++it;
        continue;
      }
      absl::Status s = h.server->ProceedToNextPhase();
      auto messages = h.sender->Take();
      absl::StatusOr<ShardSum> result = absl::UnknownError("running");
      bool ended = false;
      if (!s.ok() || h.server->phase() == secagg::Phase::kAborted) {
        result = s.ok() ? h.server->abort_status() : s;
        for (auto& [device, p] : h.pending) {
          ReplyHosted(out, p,
                      HostedAborted(absl::StrCat("dropped from round ", h.spec.round, ": shard ",
                                                 h.spec.shard,
                                                 " fell below its minimum and was "
                                                 "dropped")));
        }
        ended = true;
      } else if (h.server->phase() == secagg::Phase::kCompleted) {
        const std::vector<uint32_t> included = h.server->IncludedDevices();
        auto sum = h.server->TakeSum();
        for (auto& [device, p] : h.pending) {
          const bool in =
              sum.ok() && std::binary_search(included.begin(), included.end(), h.ids.at(device));
          v1::SecAggDownload d = HostedAborted("dropped: not in the sum");
          if (in) {
            d.set_status(v1::SecAggDownload::STATUS_COMPLETED);
            d.set_detail("in the shard's sum; the leader commits the round");
          }
          ReplyHosted(out, p, std::move(d));
        }
        if (sum.ok()) {
          result = ShardSum{std::move(*sum), static_cast<uint32_t>(included.size())};
        } else {
          result = sum.status();
        }
        ended = true;
      } else {
        for (auto& [device, p] : h.pending) {
          ReplyHosted(out, p,
                      PhaseReply(*h.server, messages, h.ids.at(device), h.spec.round,
                                 /*shard_dropped=*/false, ""));
        }
        h.phase = h.server->phase();
        h.deadline = now + h.spec.phase_deadline;
      }
      h.pending.clear();
      if (!ended) {
        ++it;
        continue;
      }
      out.push_back([done = std::move(h.done), result = std::move(result)] { done(result); });
      for (const std::string& d : h.spec.devices) where_.erase({d, h.spec.round});
      it = shards_.erase(it);
    }
  }
  for (auto& f : out) f();
}

void AggregatorRounds::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (driver_.joinable()) return;
  driver_ = std::thread([this] {
    for (;;) {
      {
        std::lock_guard<std::mutex> held(mu_);
        if (stop_) return;
      }
      Tick(Now());
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
}

void AggregatorRounds::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  if (driver_.joinable()) driver_.join();
  AggCompletions out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [key, h] : shards_) {
      for (auto& [device, p] : h->pending) {
        out.push_back([done = std::move(p.done)] {
          done(absl::UnavailableError("aggregator shutting down"), {});
        });
      }
      out.push_back([done = std::move(h->done)] {
        done(absl::AbortedError("the aggregator stopped before the shard ended"));
      });
    }
    shards_.clear();
    where_.clear();
  }
  for (auto& f : out) f();
}

int AggregatorRounds::running() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(shards_.size());
}

}  // namespace fedlora::coordinator
