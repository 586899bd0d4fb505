// Selecting, configuring and finished; the shared abort and reject helpers.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fedlora/coordinator/selection_coin.h"
#include "fedlora/coordinator/shard_plan.h"
#include "fedlora/privacy/params_wire.h"
#include "mechanism_json.h"
#include "round_states.h"

namespace fedlora::coordinator {

std::unique_ptr<RoundState> MakeAdvertiseKeysState(absl::Time deadline);  // secagg_states.cc

v1::CheckInResponse Reject(const RoundContext& ctx, v1::RejectionReason reason,
                           const std::string& detail, absl::Duration earliest, bool counted) {
  v1::CheckInResponse r;
  auto* rej = r.mutable_rejection();
  rej->set_reason(reason);
  rej->set_detail(detail);
  SetRetryWindow(rej, earliest, ctx.options.retry_min, ctx.options.retry_max);
  if (counted) CountRejection(ctx.metrics, reason);
  return r;
}

void RoundState::CheckIn(RoundContext& ctx, const std::string&, const v1::CheckInRequest&,
                         RoundManager::CheckInDone done) {
  // Pace steering: come back when this round should be over.
  absl::Duration eta = absl::ZeroDuration();
  if (deadline() != absl::InfiniteFuture() && deadline() > ctx.now) eta = deadline() - ctx.now;
  auto reply = Reject(ctx, v1::REJECTION_NO_ROUND_OPEN,
                      absl::StrCat("round ", ctx.round.round, " is in ", name(),
                                   "; the next selection opens after it"),
                      eta);
  ctx.completions.push_back([done, reply] { done(absl::OkStatus(), reply); });
}

void RoundState::SecAgg(RoundContext& ctx, const std::string&, secagg::Phase phase,
                        const v1::SecAggUpload&, const std::string&,
                        RoundManager::SecAggDone done) {
  absl::Status s = absl::FailedPreconditionError(
      absl::StrCat("wrong phase: ", secagg::PhaseName(phase), " called while round ",
                   ctx.round.round, " is in ", name(),
                   " (hint: check in again for a new task)"));
  ctx.completions.push_back([done, s] { done(s, {}); });
}

absl::Status ChargeInStore(RoundContext& ctx) {
  RoundData& r = ctx.round;
  if (r.charged) return absl::OkStatus();
  absl::Status s =
      r.begun ? absl::OkStatus() : ctx.store.BeginRound(r.round, static_cast<int>(r.cohort.size()));
  if (s.ok()) r.begun = true;
  PrivacyCharge charge;
  charge.round = r.round;
  charge.mechanism = MechanismToJson(*r.plan->mechanism);
  charge.epsilon_after = r.plan->epsilon_if_released.value_or(0);
  charge.unix = absl::ToUnixSeconds(ctx.now);
  if (s.ok()) s = ctx.store.ChargeRound(charge, r.cohort);
  if (s.ok()) r.charged = true;
  return s;
}

std::unique_ptr<RoundState> AbortRound(RoundContext& ctx, const std::string& reason) {
  RoundData& r = ctx.round;
  // Replies to sampled devices are not counted in the metrics (their number is private). They
  // are asked back within the first half of the next selection window (it opens now; at the
  // earliest retry_min or a quarter window), so that devices split by a window boundary meet in
  // the next round instead of scattering or alternating between windows.
  for (auto& [device, done] : r.waiting) {
    auto reply = Reject(ctx, v1::REJECTION_NO_ROUND_OPEN,
                        absl::StrCat("round ", r.round, " aborted: ", reason), absl::ZeroDuration(),
                        /*counted=*/false);
    auto* rej = reply.mutable_rejection();
    const int64_t window = absl::ToInt64Milliseconds(ctx.options.selection_window);
    const int64_t lo = std::min<int64_t>(rej->retry_min_ms(), window / 4);
    rej->set_retry_min_ms(static_cast<uint32_t>(lo));
    rej->set_retry_max_ms(static_cast<uint32_t>(
        std::max<int64_t>(lo + 100, std::min<int64_t>(rej->retry_max_ms(), window / 2))));
    ctx.completions.push_back([done = done, reply] { done(absl::OkStatus(), reply); });
  }
  r.waiting.clear();
  for (auto& [device, p] : r.pending) {
    v1::SecAggDownload d;
    d.set_status(v1::SecAggDownload::STATUS_ABORTED);
    d.set_detail(absl::StrCat("round ", r.round, " aborted: ", reason));
    ctx.completions.push_back([done = p.done, d] { done(absl::OkStatus(), d); });
  }
  r.pending.clear();
  if (r.charged) {
    // Charged in the store (ChargeInStore); the accountant charges the aborted Poisson round
    // unless CompleteDistributed already did.
    if (!r.accounted) {
      auto outcome = ctx.training.Abort(*r.plan, reason);
      if (!outcome.ok()) ctx.log += absl::StrCat(" (accountant: ", outcome.status().message(), ")");
    }
    absl::Status s = ctx.store.AbortRound(r.round, reason);
    if (!s.ok()) ctx.log += absl::StrCat(" (store: ", s.message(), ")");
    ctx.metrics.Increment("fedlora_rounds_total", {"aborted"});
  } else if (r.begun) {
    // Recorded but the charge failed (a store error): not left running.
    absl::Status s = ctx.store.AbortRound(r.round, reason);
    if (!s.ok()) ctx.log += absl::StrCat(" (store: ", s.message(), ")");
  }
  ctx.log = absl::StrCat("round ", r.round, " aborted: ", reason, ctx.log);
  return NextRound(ctx);
}

std::unique_ptr<RoundState> NextRound(RoundContext& ctx) {
  if (ctx.options.max_rounds > 0 && ctx.rounds_done >= ctx.options.max_rounds) {
    return MakeFinishedState(absl::StrCat("the round limit (", ctx.options.max_rounds,
                                          ") is reached"));
  }
  const uint64_t next = ctx.round.round + 1;
  ctx.round = RoundData();
  ctx.round.round = next;
  ctx.round.opened = ctx.now;
  return MakeSelectingState();
}

namespace {

class FinishedState : public RoundState {
 public:
  explicit FinishedState(std::string why) : why_(std::move(why)) {}
  const char* name() const override { return "finished"; }
  void CheckIn(RoundContext& ctx, const std::string&, const v1::CheckInRequest&,
               RoundManager::CheckInDone done) override {
    auto reply = Reject(ctx, v1::REJECTION_BUDGET_EXHAUSTED,
                        absl::StrCat("training is over: ", why_), absl::Hours(1));
    ctx.completions.push_back([done, reply] { done(absl::OkStatus(), reply); });
  }
  bool Ready(const RoundContext&) const override { return false; }
  std::unique_ptr<RoundState> Close(RoundContext&) override {
    return std::make_unique<FinishedState>(why_);
  }
  bool terminal() const override { return true; }

 private:
  std::string why_;
};

class ConfiguringState : public RoundState {
 public:
  const char* name() const override { return "configuring"; }
  bool Ready(const RoundContext&) const override { return true; }
  std::unique_ptr<RoundState> Close(RoundContext& ctx) override;
};

std::unique_ptr<RoundState> ConfiguringState::Close(RoundContext& ctx) {
  RoundData& r = ctx.round;
  // The charge is committed before any device is told to train: no crash and no abort can
  // release an uncharged sum, and every later abort of this round stays charged.
  if (absl::Status s = ChargeInStore(ctx); !s.ok()) {
    return AbortRound(ctx, absl::StrCat("store: ", s.message()));
  }
  // Devices whose check-in was superseded or cancelled are still in the cohort: they simply
  // never advertise keys and are dropped like any dropout.
  const uint32_t n = static_cast<uint32_t>(r.cohort.size());
  auto plan = PlanShards(ctx.training.aggregator(), r.plan->privacy, n, ctx.options.graph, ctx.rng);
  if (!plan.ok()) return AbortRound(ctx, std::string(plan.status().message()));
  // Multi-host: a sharded round's shards go round robin to the live aggregator processes.
  std::vector<std::string> aggregators;
  if (ctx.options.shard_dispatcher && plan->shards.size() > 1) {
    aggregators = ctx.options.shard_dispatcher->Aggregators();
  }
  for (size_t k = 0; k < plan->shards.size(); ++k) {
    ShardSession shard;
    shard.session = std::move(plan->shards[k].session);
    const std::vector<uint32_t>& members = plan->shards[k].members;
    for (uint32_t i = 0; i < members.size(); ++i) {
      r.slots[r.cohort[members[i]]] = SecAggSlot{static_cast<uint32_t>(k), i};
    }
    if (!aggregators.empty()) {
      ShardSpec spec;
      spec.round = r.round;
      spec.shard = static_cast<uint32_t>(k);
      spec.session = shard.session;
      for (uint32_t m : members) spec.devices.push_back(r.cohort[m]);
      spec.advertise_deadline = ctx.options.train_deadline;
      spec.phase_deadline = ctx.options.phase_deadline;
      shard.aggregator = aggregators[k % aggregators.size()];
      // Its last phase ends by train + 3 phase deadlines; one more for unmasking's work.
      shard.remote_deadline = ctx.now + ctx.options.train_deadline + 4 * ctx.options.phase_deadline;
      shard.remote = ctx.options.shard_dispatcher->Run(shard.aggregator, spec);
    } else {
      shard.sender = std::make_unique<CollectingSender>();
      auto server = secagg::SecAggServer::Create(shard.session, shard.sender.get());
      if (!server.ok()) return AbortRound(ctx, std::string(server.status().message()));
      shard.server = std::move(*server);
    }
    r.shards.push_back(std::move(shard));
  }
  const double epsilon_after = r.plan->epsilon_if_released.value_or(0);
  v1::Task task;
  task.set_round(r.round);
  task.set_adapter_version(ctx.adapter.version);
  task.set_adapter_sha256(ctx.adapter.sha256);
  task.set_adapter_bytes(ctx.adapter.bytes);
  *task.mutable_recipe() = ctx.options.training;
  *task.mutable_privacy() = privacy::ParamsToProto(r.plan->privacy);
  task.set_epsilon_observers_if_released(epsilon_after);
  task.set_sampling_rate(SamplingRate(ctx.training.aggregator().recipe()));
  task.set_delta(ctx.training.aggregator().recipe().delta);
  // LoraMethod and v1::LoraMethod share their numbering (lora 0, ffa 1, fedsa 2).
  static_assert(static_cast<int>(LoraMethod::kFfa) == v1::LORA_METHOD_FFA &&
                static_cast<int>(LoraMethod::kFedSa) == v1::LORA_METHOD_FEDSA);
  task.set_lora_method(static_cast<v1::LoraMethod>(ctx.options.lora_method));
  task.set_advertise_deadline_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(ctx.options.train_deadline)));
  // Tasks are not counted in the metrics: their number is the private sample size.
  for (auto& [device, done] : r.waiting) {
    v1::CheckInResponse reply;
    *reply.mutable_task() = task;
    // The device's shard: its session, its index there and the minimum its noise is for.
    const SecAggSlot slot = r.slots[device];
    *reply.mutable_task()->mutable_secagg() = r.shards[slot.shard].session;
    reply.mutable_task()->set_secagg_id(slot.id);
    reply.mutable_task()->set_shard(slot.shard);
    reply.mutable_task()->set_shard_min_survivors(
        r.shards[slot.shard].session.min_sum_devices());
    reply.mutable_task()->set_aggregator_address(r.shards[slot.shard].aggregator);
    reply.mutable_task()->set_task_seed(ctx.rng.NextU64());
    ctx.completions.push_back([done = done, reply] { done(absl::OkStatus(), reply); });
  }
  r.waiting.clear();
  ctx.log = absl::StrFormat(
      "round %d: sample within [minimum, max_cohort], tasks sent; charged, epsilon %.4g", r.round,
      epsilon_after);
  return MakeAdvertiseKeysState(ctx.now + ctx.options.train_deadline);
}

// Poisson sampling: the window is fixed, [opened, opened + selection_window), whoever checks
// in; every eligible device checking in during it gets exactly one coin with the published
// rate q, and nothing that depends on arrival order (no target, no cap) decides who is
// sampled. The size test comes only at the window's end.
class SelectingState : public RoundState {
 public:
  const char* name() const override { return "selecting"; }
  void CheckIn(RoundContext& ctx, const std::string& device, const v1::CheckInRequest& request,
               RoundManager::CheckInDone done) override;
  bool Ready(const RoundContext& ctx) const override { return ctx.now >= WindowEnd(ctx); }
  std::unique_ptr<RoundState> Close(RoundContext& ctx) override;

 private:
  static absl::Time WindowEnd(const RoundContext& ctx) {
    return ctx.round.opened + ctx.options.selection_window;
  }
};

std::unique_ptr<RoundState> SelectingState::Close(RoundContext& ctx) {
  RoundData& r = ctx.round;
  if (r.flipped.empty() && !(ctx.options.coins_flipped_elsewhere &&
                             ctx.options.coins_flipped_elsewhere(r.round, r.opened))) {
    // No device checked in (here or, multi-host, at an edge), so no coin was flipped and
    // nothing depends on a sample: the same round opens a new window (nothing charged,
    // nothing recorded; the coin key stays, so a device's coin for the round stays too).
    r.opened = ctx.now;
    return MakeSelectingState();
  }
  // The plan does not depend on the sample; past the budget the run stops whatever was drawn.
  auto plan = ctx.training.PlanRound(ctx.rng.NextU64());
  if (!plan.ok()) {
    if (plan.status().code() == absl::StatusCode::kFailedPrecondition) {
      for (auto& [device, done] : r.waiting) {
        auto reply = Reject(ctx, v1::REJECTION_BUDGET_EXHAUSTED,
                            std::string(plan.status().message()), absl::Hours(1),
                            /*counted=*/false);
        ctx.completions.push_back([done = done, reply] { done(absl::OkStatus(), reply); });
      }
      r.waiting.clear();
      ctx.log = absl::StrCat("privacy budget spent: ", plan.status().message());
      return MakeFinishedState(std::string(plan.status().message()));
    }
    return AbortRound(ctx, absl::StrCat("cannot plan the round: ", plan.status().message()));
  }
  r.plan = *plan;
  // Whether the round goes on depends on the private sample size: from here on the round is
  // charged whatever happens (the same mechanism it would have had if released). Neither the
  // reason nor the log names a count.
  const int n = static_cast<int>(r.cohort.size());
  std::string why;
  if (n < ctx.min_cohort) {
    why =
        "fewer than the minimum cohort were sampled in the selection window (hint: more "
        "devices checking in, a higher sampling_rate or a longer selection_window_s)";
  } else if (n > ctx.max_cohort) {
    why =
        "more devices were sampled than max_cohort allows (hint: raise max_cohort; the noise "
        "headroom and the secure-aggregation session are sized for it)";
  } else {
    return std::make_unique<ConfiguringState>();
  }
  if (absl::Status s = ChargeInStore(ctx); !s.ok()) {
    return AbortRound(ctx, absl::StrCat(why, "; store: ", s.message()));
  }
  return AbortRound(ctx, why);
}

void SelectingState::CheckIn(RoundContext& ctx, const std::string& device,
                             const v1::CheckInRequest&, RoundManager::CheckInDone done) {
  RoundData& r = ctx.round;
  if (r.ids.count(device)) {
    // A selected device checking in again (its first call timed out): the newest call waits.
    auto it = r.waiting.find(device);
    if (it != r.waiting.end()) {
      auto old = it->second;
      ctx.completions.push_back([old] {
        old(absl::AbortedError("superseded by a newer check-in of this device"), {});
      });
    }
    r.waiting[device] = std::move(done);
    return;
  }
  if (ctx.now >= WindowEnd(ctx)) {
    // The window closed (the driver has not ticked yet): no coin after the window.
    auto reply = Reject(ctx, v1::REJECTION_NO_ROUND_OPEN,
                        absl::StrCat("round ", r.round,
                                     "'s selection window has closed; the next one opens after it"),
                        absl::ZeroDuration());
    ctx.completions.push_back([done, reply] { done(absl::OkStatus(), reply); });
    return;
  }
  // Coin outcomes are not counted in the metrics (their numbers are private).
  const double q = SamplingRate(ctx.training.aggregator().recipe());
  if (r.flipped.count(device)) {
    auto reply = Reject(ctx, v1::REJECTION_NOT_SELECTED,
                        absl::StrCat("not sampled for round ", r.round, " (one coin per round)"),
                        ctx.options.retry_max, /*counted=*/false);
    ctx.completions.push_back([done, reply] { done(absl::OkStatus(), reply); });
    return;
  }
  r.flipped.insert(device);
  // The same coin an edge computes from the published window (selection_coin.h).
  if (!CoinSelected(r.coin_key, r.round, device, q)) {
    auto reply = Reject(ctx, v1::REJECTION_NOT_SELECTED,
                        absl::StrFormat("not sampled for round %d (rate %g)", r.round, q),
                        ctx.options.retry_max, /*counted=*/false);
    ctx.completions.push_back([done, reply] { done(absl::OkStatus(), reply); });
    return;
  }
  r.ids[device] = static_cast<uint32_t>(r.cohort.size());
  r.cohort.push_back(device);
  r.waiting[device] = std::move(done);
}

}  // namespace

std::unique_ptr<RoundState> MakeSelectingState() { return std::make_unique<SelectingState>(); }
std::unique_ptr<RoundState> MakeFinishedState(std::string why) {
  return std::make_unique<FinishedState>(std::move(why));
}

}  // namespace fedlora::coordinator
