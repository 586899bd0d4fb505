// The round's finish ("committing"), off the manager's mutex: the job unmasks each shard's sum
// (SecAggServer::ProceedToNextPhase: Shamir reconstruction, PRG expansion; a shard that aborts
// is dropped), adds the shard sums, checks the survivors reach the round's minimum, decodes and
// applies the server step (FederatedTraining::CompleteDistributed), then commits the new
// version to the store (blob and WAL fsyncs). The manager runs it on its worker thread; while
// it runs, check-ins get the default pace-steered rejection and every other call is answered
// at once. Close() (under the mutex, short) replies to the devices and opens the next round,
// or aborts the round.
#include <algorithm>
#include <atomic>
#include <csignal>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fedlora/common/adapter_blob.h"
#include "fedlora/common/lora_method.h"
#include "fedlora/coordinator/shard_plan.h"
#include "nlohmann/json.hpp"
#include "round_states.h"

namespace fedlora::coordinator {
namespace {

// What the job reads and writes. The manager leaves the round's server, sender and plan and
// the training alone until `done`; the job touches nothing else of the manager's.
struct FinishWork {
  // The round's shards (one without sharding); null for a shard dropped before unmasking.
  std::vector<secagg::SecAggServer*> servers;
  std::vector<CollectingSender*> senders;
  // Shards run by aggregator processes (null for the leader's own), and how long to wait for
  // their sums: an unanswered or failed one is dropped.
  std::vector<std::shared_ptr<RemoteShard>> remotes;
  std::vector<absl::Time> remote_deadlines;
  int bits = 0;
  int round_min = 0;  // survivors the round needs over the unmasked shards
  const RoundPlan* plan = nullptr;
  FederatedTraining* training = nullptr;
  Store* store = nullptr;
  uint64_t round = 0;
  std::string base_model_sha256, crash_at;
  AdapterBlob current;          // the latest version (a copy): the new one replaces only
  std::vector<size_t> shared;   // these positions (ffa: B, fedsa: A; empty = all)

  // Results, read by Close() once `done`.
  std::atomic<bool> done{false};
  bool released = false;
  std::string abort_reason;
  bool accounted = false;  // the accountant already charged the aborted round
  bool reload = false;     // the step was applied in memory but not persisted
  AdapterVersion version;
  AdapterBlob committed;  // the new version's blob, ctx.current once Close() runs
  std::vector<std::vector<uint32_t>> included;  // per shard: session indices in the sum
  std::vector<absl::Status> dropped;           // per shard: why it aborted in unmasking (or OK)
  int summed = 0;

  void Run() {
    Finish();
    done.store(true, std::memory_order_release);
  }

  // Unmasks every shard still running; a shard that aborts (below its minimum) is dropped.
  // Returns the sum of the unmasked shards' sums, or sets abort_reason.
  std::optional<std::vector<uint32_t>> UnmaskShards() {
    std::vector<std::vector<uint32_t>> sums;
    absl::Status last = absl::FailedPreconditionError("no shard reached unmasking");
    included.assign(servers.size(), {});
    dropped.assign(servers.size(), absl::OkStatus());
    for (size_t k = 0; k < servers.size(); ++k) {
      if (remotes[k]) {
        absl::StatusOr<ShardSum> remote = remotes[k]->Wait(remote_deadlines[k]);
        if (!remote.ok()) {
          last = dropped[k] = remote.status();
          continue;
        }
        sums.push_back(std::move(remote->sum));
        summed += static_cast<int>(remote->survivors);
        continue;  // its devices' replies are the aggregator's
      }
      if (servers[k] == nullptr) continue;
      absl::Status s = servers[k]->ProceedToNextPhase();
      senders[k]->Take();  // nothing is owed after unmasking: the replies are the commit's
      if (!s.ok() || servers[k]->phase() != secagg::Phase::kCompleted) {
        last = dropped[k] = s.ok() ? servers[k]->abort_status() : s;
        continue;
      }
      auto sum = servers[k]->TakeSum();
      if (!sum.ok()) {
        last = dropped[k] = sum.status();
        continue;
      }
      sums.push_back(std::move(*sum));
      included[k] = servers[k]->IncludedDevices();
      summed += static_cast<int>(included[k].size());
    }
    if (sums.empty()) {
      abort_reason = PublicAbortReason("unmasking", last);
      return std::nullopt;
    }
    if (summed < round_min) {
      // Only a sharded round gets here (one session never unmasks fewer than the minimum).
      abort_reason =
          "secure aggregation: the shards that kept their minimum hold fewer survivors together "
          "than the round's minimum (the others were dropped); nothing released";
      return std::nullopt;
    }
    auto total = AddShardSums(sums, bits);
    if (!total.ok()) {
      abort_reason = std::string(total.status().message());
      return std::nullopt;
    }
    return std::move(*total);
  }

  void Finish() {
    std::optional<std::vector<uint32_t>> sum = UnmaskShards();
    if (!sum) return;
    auto outcome = training->CompleteDistributed(*plan, *sum, summed);
    if (!outcome.ok() || !outcome->released) {
      accounted = outcome.ok() && outcome->charged;
      abort_reason = outcome.ok() ? outcome->abort_reason : std::string(outcome.status().message());
      return;
    }
    // The new version: the latest adapter with its shared values replaced; the rest stays as
    // initialised. The run state (clip, server-optimizer moments) goes in the same
    // transaction, so a crash cannot leave the two out of step.
    AdapterBlob blob = current;
    blob.base_model_sha256 = base_model_sha256;
    absl::StatusOr<AdapterVersion> v = absl::InternalError("not committed");
    if (absl::Status scatter = Scatter(training->global(), shared, &blob.values); !scatter.ok()) {
      v = scatter;
    } else {
      v = store->CommitRound(round, summed, EncodeAdapterBlob(blob), training->EncodeState());
    }
    if (!v.ok()) {
      // CompleteDistributed charged the accountant and moved the global: the manager reloads
      // both from the store, and AbortRound must not charge again.
      accounted = true;
      reload = true;
      abort_reason = absl::StrCat("commit failed: ", v.status().message());
      return;
    }
    version = *v;
    committed = std::move(blob);
    released = true;
    if (crash_at == "committed") raise(SIGKILL);
  }
};

class FinishingState : public RoundState {
 public:
  explicit FinishingState(std::shared_ptr<FinishWork> work) : work_(std::move(work)) {}
  const char* name() const override { return "committing"; }
  std::function<void()> TakeJob() override {
    if (taken_) return nullptr;
    taken_ = true;
    return [work = work_] { work->Run(); };
  }
  bool Ready(const RoundContext&) const override {
    return work_->done.load(std::memory_order_acquire);
  }
  std::unique_ptr<RoundState> Close(RoundContext& ctx) override;

 private:
  std::shared_ptr<FinishWork> work_;
  bool taken_ = false;
};

std::unique_ptr<RoundState> FinishingState::Close(RoundContext& ctx) {
  RoundData& r = ctx.round;
  FinishWork& w = *work_;
  for (size_t k = 0; k < w.dropped.size(); ++k) {
    if (!w.dropped[k].ok()) DropShard(ctx, r.shards[k], w.dropped[k]);
  }
  if (!w.released) {
    r.accounted = r.accounted || w.accounted;
    ctx.reload_from_store = w.reload;
    return AbortRound(ctx, w.abort_reason);
  }
  ctx.committed = w.version;
  ctx.current = std::move(w.committed);
  for (auto& [device, p] : r.pending) {
    v1::SecAggDownload d;
    const SecAggSlot slot = r.slots[device];
    const auto& in_shard = w.included[slot.shard];
    const bool in = std::binary_search(in_shard.begin(), in_shard.end(), slot.id);
    d.set_status(in ? v1::SecAggDownload::STATUS_COMPLETED : v1::SecAggDownload::STATUS_ABORTED);
    if (!in) d.set_detail("dropped: not in the sum");
    d.set_new_adapter_version(w.version.version);
    ctx.completions.push_back([done = std::move(p.done), d] { done(absl::OkStatus(), d); });
  }
  r.pending.clear();
  ctx.metrics.Increment("fedlora_rounds_total", {"committed"});
  ctx.metrics.Set("fedlora_epsilon", ctx.training.epsilon());
  ctx.metrics.Set("fedlora_adapter_version", static_cast<double>(w.version.version));
  // The number summed is private: the log and the metrics do not carry it.
  ctx.log = absl::StrFormat("round %d committed: adapter version %d, epsilon %.4g", r.round,
                            w.version.version, ctx.training.epsilon());
  ctx.rounds_done++;
  return NextRound(ctx);
}

}  // namespace

std::unique_ptr<RoundState> MakeFinishingState(RoundContext& ctx) {
  RoundData& r = ctx.round;
  auto work = std::make_shared<FinishWork>();
  for (ShardSession& shard : r.shards) {
    work->servers.push_back(shard.dropped ? nullptr : shard.server.get());
    work->senders.push_back(shard.sender.get());
    work->remotes.push_back(shard.remote);
    work->remote_deadlines.push_back(shard.remote_deadline);
  }
  work->bits = static_cast<int>(ctx.options.recipe.bits);
  work->round_min = ctx.training.aggregator().min_clients();
  work->plan = &*r.plan;
  work->training = &ctx.training;
  work->store = &ctx.store;
  work->round = r.round;
  work->current = ctx.current;
  work->shared = ctx.shared;
  work->base_model_sha256 = ctx.options.base_model_sha256;
  work->crash_at = ctx.options.crash_at;
  return std::make_unique<FinishingState>(std::move(work));
}

}  // namespace fedlora::coordinator
