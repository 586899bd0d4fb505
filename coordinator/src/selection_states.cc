// Selecting, configuring and finished; the shared abort and reject helpers.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fedlora/privacy/params_wire.h"
#include "fedlora/secagg/session_config.h"
#include "mechanism_json.h"
#include "round_states.h"

namespace fedlora::coordinator {

std::unique_ptr<RoundState> MakeAdvertiseKeysState(absl::Time deadline);  // secagg_states.cc

v1::CheckInResponse Reject(const RoundContext& ctx, v1::RejectionReason reason,
                           const std::string& detail, absl::Duration earliest) {
  v1::CheckInResponse r;
  auto* rej = r.mutable_rejection();
  rej->set_reason(reason);
  rej->set_detail(detail);
  const absl::Duration lo = std::max(earliest, ctx.options.retry_min);
  const absl::Duration spread = std::max(ctx.options.retry_max - ctx.options.retry_min,
                                         absl::Milliseconds(100));
  rej->set_retry_min_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(lo)));
  rej->set_retry_max_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(lo + spread)));
  ctx.metrics.Increment("fedlora_checkins_total", {"rejected"});
  ctx.metrics.Increment("fedlora_rejections_total", {v1::RejectionReason_Name(reason)});
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

std::unique_ptr<RoundState> AbortRound(RoundContext& ctx, const std::string& reason) {
  RoundData& r = ctx.round;
  for (auto& [device, done] : r.waiting) {
    auto reply = Reject(ctx, v1::REJECTION_NO_ROUND_OPEN,
                        absl::StrCat("round ", r.round, " aborted: ", reason), absl::ZeroDuration());
    ctx.completions.push_back([done = done, reply] { done(absl::OkStatus(), reply); });
  }
  r.waiting.clear();
  for (auto& [id, p] : r.pending) {
    v1::SecAggDownload d;
    d.set_status(v1::SecAggDownload::STATUS_ABORTED);
    d.set_detail(absl::StrCat("round ", r.round, " aborted: ", reason));
    ctx.completions.push_back([done = p.done, d] { done(absl::OkStatus(), d); });
  }
  r.pending.clear();
  if (r.plan) {
    // The store was charged at configuring; the accountant charges an aborted Poisson round.
    auto outcome = ctx.training.Abort(*r.plan, reason);
    (void)outcome;
    absl::Status s = ctx.store.AbortRound(r.round, reason);
    if (!s.ok()) ctx.log += absl::StrCat(" (store: ", s.message(), ")");
    ctx.metrics.Increment("fedlora_rounds_total", {"aborted"});
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
  // Devices whose check-in was superseded or cancelled are still in the cohort: they simply
  // never advertise keys and are dropped like any dropout.
  auto plan = ctx.training.PlanRound(ctx.rng.NextU64());
  if (!plan.ok()) {
    if (plan.status().code() == absl::StatusCode::kFailedPrecondition) {
      for (auto& [device, done] : r.waiting) {
        auto reply = Reject(ctx, v1::REJECTION_BUDGET_EXHAUSTED,
                            std::string(plan.status().message()), absl::Hours(1));
        ctx.completions.push_back([done = done, reply] { done(absl::OkStatus(), reply); });
      }
      r.waiting.clear();
      ctx.log = absl::StrCat("privacy budget spent: ", plan.status().message());
      return MakeFinishedState(std::string(plan.status().message()));
    }
    return AbortRound(ctx, absl::StrCat("cannot plan the round: ", plan.status().message()));
  }
  const uint32_t n = static_cast<uint32_t>(r.cohort.size());
  auto params = ctx.training.aggregator().SessionFor(plan->privacy, n);
  if (!params.ok()) return AbortRound(ctx, std::string(params.status().message()));
  params->graph = ctx.options.graph;
  // Expected dropout (derives the threshold and degree): what over-selection anticipates,
  // capped so that the complete graph's honest-majority threshold stays reachable for small n.
  const double majority = 1 - (std::floor(n / 2.0) + 1) / std::max(1.0, double(n));
  params->expected_dropout_rate =
      std::max(0.0, std::min({0.45, majority, 1 - 1 / ctx.options.over_selection}));
  auto config = secagg::MakeSessionConfig(*params, ctx.rng);
  if (!config.ok() && params->graph == proto::SECAGG_GRAPH_KREGULAR) {
    params->graph = proto::SECAGG_GRAPH_COMPLETE;  // too few devices for SecAgg+
    config = secagg::MakeSessionConfig(*params, ctx.rng);
  }
  if (!config.ok()) return AbortRound(ctx, std::string(config.status().message()));
  r.sender = std::make_unique<CollectingSender>();
  auto server = secagg::SecAggServer::Create(*config, r.sender.get());
  if (!server.ok()) return AbortRound(ctx, std::string(server.status().message()));
  r.server = std::move(*server);
  r.session = *config;
  // The charge is committed before any device is told to train: no crash and no abort can
  // release an uncharged sum (Poisson: an aborted round is charged too).
  absl::Status s = ctx.store.BeginRound(r.round, static_cast<int>(n));
  PrivacyCharge charge;
  charge.round = r.round;
  charge.mechanism = MechanismToJson(*plan->mechanism);
  charge.epsilon_after = plan->epsilon_if_released.value_or(0);
  charge.unix = absl::ToUnixSeconds(ctx.now);
  if (s.ok()) s = ctx.store.ChargeRound(charge, r.cohort);
  r.plan = *plan;
  if (!s.ok()) {
    r.plan.reset();  // nothing charged in the store: nothing to charge in memory either
    return AbortRound(ctx, absl::StrCat("store: ", s.message()));
  }
  r.charged = true;
  v1::Task task;
  task.set_round(r.round);
  task.set_adapter_version(ctx.adapter.version);
  task.set_adapter_sha256(ctx.adapter.sha256);
  task.set_adapter_bytes(ctx.adapter.bytes);
  *task.mutable_recipe() = ctx.options.training;
  *task.mutable_privacy() = privacy::ParamsToProto(plan->privacy);
  *task.mutable_secagg() = r.session;
  task.set_epsilon_if_released(charge.epsilon_after);
  task.set_delta(ctx.training.aggregator().recipe().delta);
  task.set_advertise_deadline_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(ctx.options.train_deadline)));
  for (auto& [device, done] : r.waiting) {
    v1::CheckInResponse reply;
    *reply.mutable_task() = task;
    reply.mutable_task()->set_secagg_id(r.ids[device]);
    reply.mutable_task()->set_task_seed(ctx.rng.NextU64());
    ctx.metrics.Increment("fedlora_checkins_total", {"task"});
    ctx.completions.push_back([done = done, reply] { done(absl::OkStatus(), reply); });
  }
  r.waiting.clear();
  ctx.log = absl::StrFormat("round %d: %d devices selected, epsilon if released %.4g", r.round, n,
                            charge.epsilon_after);
  return MakeAdvertiseKeysState(ctx.now + ctx.options.train_deadline);
}

class SelectingState : public RoundState {
 public:
  const char* name() const override { return "selecting"; }
  void CheckIn(RoundContext& ctx, const std::string& device, const v1::CheckInRequest& request,
               RoundManager::CheckInDone done) override;
  bool Ready(const RoundContext& ctx) const override {
    const int n = static_cast<int>(ctx.round.cohort.size());
    if (n >= ctx.target) return true;
    if (ctx.now >= ctx.round.opened + ctx.options.selection_timeout) return true;
    return n >= ctx.min_cohort && ctx.round.min_cohort_at &&
           ctx.now >= *ctx.round.min_cohort_at + ctx.options.selection_window;
  }
  std::unique_ptr<RoundState> Close(RoundContext& ctx) override {
    const int n = static_cast<int>(ctx.round.cohort.size());
    if (n < ctx.min_cohort) {
      // Nothing was charged and no task went out: the sampled devices are told to come back.
      return AbortRound(ctx, absl::StrFormat(
                                 "selection timed out after %.0f s: %d of the minimum %d devices "
                                 "sampled (%d checked in; hint: more devices, a higher "
                                 "sampling_rate or a longer selection_timeout_s)",
                                 absl::ToDoubleSeconds(ctx.options.selection_timeout), n,
                                 ctx.min_cohort, static_cast<int>(ctx.round.flipped.size())));
    }
    return std::make_unique<ConfiguringState>();
  }
};

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
  if (r.flipped.count(device)) {
    auto reply = Reject(ctx, v1::REJECTION_NOT_SELECTED,
                        absl::StrCat("not sampled for round ", r.round, " (one coin per round)"),
                        ctx.options.retry_max);
    ctx.completions.push_back([done, reply] { done(absl::OkStatus(), reply); });
    return;
  }
  if (static_cast<int>(r.cohort.size()) >= ctx.target) {
    auto reply = Reject(ctx, v1::REJECTION_NO_ROUND_OPEN,
                        absl::StrCat("round ", r.round, " has its cohort"), absl::ZeroDuration());
    ctx.completions.push_back([done, reply] { done(absl::OkStatus(), reply); });
    return;
  }
  r.flipped.insert(device);
  const double q = SamplingRate(ctx.training.aggregator().recipe());
  if (q < 1 && ctx.rng.UniformDouble() >= q) {
    auto reply = Reject(ctx, v1::REJECTION_NOT_SELECTED,
                        absl::StrFormat("not sampled for round %d (rate %g)", r.round, q),
                        ctx.options.retry_max);
    ctx.completions.push_back([done, reply] { done(absl::OkStatus(), reply); });
    return;
  }
  r.ids[device] = static_cast<uint32_t>(r.cohort.size());
  r.cohort.push_back(device);
  r.waiting[device] = std::move(done);
  if (!r.min_cohort_at && static_cast<int>(r.cohort.size()) >= ctx.min_cohort) {
    r.min_cohort_at = ctx.now;
  }
}

}  // namespace

std::unique_ptr<RoundState> MakeSelectingState() { return std::make_unique<SelectingState>(); }
std::unique_ptr<RoundState> MakeFinishedState(std::string why) {
  return std::make_unique<FinishedState>(std::move(why));
}

}  // namespace fedlora::coordinator
