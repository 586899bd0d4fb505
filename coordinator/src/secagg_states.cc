// The four secure-aggregation phases and the commit. The protocol logic is the secagg
// library's SecAggServer (its own per-phase states); these states add what a network needs:
// who may speak, deadlines, retries, and the replies. Every sampled device's message that
// arrives before its phase's deadline is taken (no reporting goal cuts a phase short: that
// would let one device's input displace another's).
#include <csignal>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fedlora/common/adapter_blob.h"
#include "nlohmann/json.hpp"
#include "round_states.h"

namespace fedlora::coordinator {
namespace {

const char* kPhaseNames[] = {"advertise_keys", "share_keys", "masked_input", "unmasking"};

class CommittingState : public RoundState {
 public:
  const char* name() const override { return "committing"; }
  bool Ready(const RoundContext&) const override { return true; }
  std::unique_ptr<RoundState> Close(RoundContext& ctx) override;
};

class SecAggPhaseState : public RoundState {
 public:
  SecAggPhaseState(secagg::Phase phase, absl::Time deadline) : phase_(phase), deadline_(deadline) {}
  const char* name() const override { return kPhaseNames[static_cast<int>(phase_)]; }
  absl::Time deadline() const override { return deadline_; }
  void SecAgg(RoundContext& ctx, const std::string& device, secagg::Phase phase,
              const v1::SecAggUpload& upload, const std::string& digest,
              RoundManager::SecAggDone done) override;
  bool Ready(const RoundContext& ctx) const override {
    const RoundData& r = ctx.round;
    return ctx.now >= deadline_ || r.server->NumPending() == 0;
  }
  std::unique_ptr<RoundState> Close(RoundContext& ctx) override;

 private:
  secagg::Phase phase_;
  absl::Time deadline_;
};

// The secure-aggregation server's abort messages carry counts (survivors, thresholds, device
// indices) that reveal the private sample size; the round's recorded reason keeps only the
// phase and the kind of failure.
std::string PublicAbortReason(const char* phase, const absl::Status& why) {
  if (why.code() == absl::StatusCode::kFailedPrecondition ||
      why.code() == absl::StatusCode::kDeadlineExceeded) {
    return absl::StrCat("secure aggregation aborted in ", phase,
                        ": too few devices remained (below the secure-aggregation threshold or "
                        "the minimum the noise is calibrated for); nothing released");
  }
  return absl::StrCat("secure aggregation aborted in ", phase, ": ",
                      absl::StatusCodeToString(why.code()),
                      " (details withheld: they name private counts); nothing released");
}

void Fail(RoundContext& ctx, RoundManager::SecAggDone& done, absl::Status s) {
  ctx.completions.push_back([done, s] { done(s, {}); });
}

void SecAggPhaseState::SecAgg(RoundContext& ctx, const std::string& device, secagg::Phase phase,
                              const v1::SecAggUpload& upload, const std::string& digest,
                              RoundManager::SecAggDone done) {
  RoundData& r = ctx.round;
  if (upload.round() != r.round) {
    return Fail(ctx, done, absl::FailedPreconditionError(absl::StrCat(
                               "round ", upload.round(), " is not running (current round ",
                               r.round, "; hint: check in again for a new task)")));
  }
  auto id = r.ids.find(device);
  if (id == r.ids.end()) {
    return Fail(ctx, done, absl::PermissionDeniedError(absl::StrCat(
                               "device ", device, " is not in round ", r.round, "'s cohort")));
  }
  if (upload.message().device() != id->second) {
    return Fail(ctx, done, absl::PermissionDeniedError(absl::StrCat(
                               "message names secure-aggregation device ",
                               upload.message().device(), " but this device is ", id->second)));
  }
  if (phase != phase_) {
    return Fail(ctx, done, absl::FailedPreconditionError(absl::StrCat(
                               "wrong phase: ", secagg::PhaseName(phase), " called while round ",
                               r.round, " is in ", name())));
  }
  const std::string& bytes = digest;
  auto pending = r.pending.find(id->second);
  if (pending != r.pending.end()) {
    if (pending->second.message_bytes != bytes) {
      return Fail(ctx, done, absl::FailedPreconditionError(
                                 "a different message was already received in this phase"));
    }
    // An identical retry (the first call's connection broke): the newest call gets the reply.
    auto old = std::move(pending->second.done);
    ctx.completions.push_back([old] { old(absl::AbortedError("superseded by a retry"), {}); });
    pending->second.done = std::move(done);
    return;
  }
  absl::Status s = r.server->HandleMessage(upload.message());
  if (!s.ok()) {
    auto outcome = r.server->Outcome(id->second);
    ctx.metrics.Increment("fedlora_device_drops_total", {secagg::DropReasonName(outcome.reason)});
    return Fail(ctx, done, s);
  }
  r.pending[id->second] = PendingReply{std::move(done), bytes};
}

std::unique_ptr<RoundState> SecAggPhaseState::Close(RoundContext& ctx) {
  RoundData& r = ctx.round;
  absl::Status s = r.server->ProceedToNextPhase();
  auto messages = r.sender->Take();
  const bool aborted = r.server->phase() == secagg::Phase::kAborted;
  const bool completed = r.server->phase() == secagg::Phase::kCompleted;
  if (!aborted && !completed) {
    for (auto& [id, p] : r.pending) {
      v1::SecAggDownload d;
      auto m = messages.find(id);
      if (m != messages.end() && !m->second.has_abort()) {
        d.set_status(v1::SecAggDownload::STATUS_NEXT);
        *d.mutable_message() = m->second;
      } else {
        d.set_status(v1::SecAggDownload::STATUS_ABORTED);
        d.set_detail(absl::StrCat("dropped from round ", r.round, ": ",
                                  r.server->Outcome(id).detail));
      }
      ctx.completions.push_back([done = std::move(p.done), d] { done(absl::OkStatus(), d); });
    }
    r.pending.clear();
  }
  if (!s.ok() || aborted) {
    const absl::Status why = s.ok() ? r.server->abort_status() : s;
    return AbortRound(ctx, PublicAbortReason(name(), why));
  }
  if (completed) return std::make_unique<CommittingState>();
  const auto next = static_cast<secagg::Phase>(static_cast<int>(phase_) + 1);
  return std::make_unique<SecAggPhaseState>(next, ctx.now + ctx.options.phase_deadline);
}

std::unique_ptr<RoundState> CommittingState::Close(RoundContext& ctx) {
  RoundData& r = ctx.round;
  auto sum = r.server->TakeSum();
  if (!sum.ok()) return AbortRound(ctx, std::string(sum.status().message()));
  const auto included = r.server->IncludedDevices();
  auto outcome = ctx.training.CompleteDistributed(*r.plan, *sum, static_cast<int>(included.size()));
  if (!outcome.ok() || !outcome->released) {
    if (outcome.ok() && outcome->charged) r.accounted = true;  // AbortRound must not charge twice
    return AbortRound(ctx, outcome.ok() ? outcome->abort_reason
                                        : std::string(outcome.status().message()));
  }
  // The new version: the latest adapter with its shared values replaced (ffa: B, fedsa: A);
  // the rest stays as initialised. The run state (clip, server-optimizer moments) goes in the
  // same transaction, so a crash cannot leave the two out of step.
  AdapterBlob blob = ctx.current;
  blob.base_model_sha256 = ctx.options.base_model_sha256;
  if (absl::Status s = Scatter(ctx.training.global(), ctx.shared, &blob.values); !s.ok()) {
    ctx.reload_from_store = true;
    return AbortRound(ctx, absl::StrCat("commit failed: ", s.message()));
  }
  auto version = ctx.store.CommitRound(r.round, static_cast<int>(included.size()),
                                       EncodeAdapterBlob(blob), ctx.training.EncodeState());
  if (!version.ok()) {
    // The step was applied in memory but not persisted: the manager reloads from the store.
    ctx.reload_from_store = true;
    return AbortRound(ctx, absl::StrCat("commit failed: ", version.status().message()));
  }
  ctx.committed = *version;
  ctx.current = std::move(blob);
  if (ctx.options.crash_at == "committed") raise(SIGKILL);
  for (auto& [id, p] : r.pending) {
    v1::SecAggDownload d;
    const bool in = std::binary_search(included.begin(), included.end(), id);
    d.set_status(in ? v1::SecAggDownload::STATUS_COMPLETED : v1::SecAggDownload::STATUS_ABORTED);
    if (!in) d.set_detail("dropped: not in the sum");
    d.set_new_adapter_version(version->version);
    ctx.completions.push_back([done = std::move(p.done), d] { done(absl::OkStatus(), d); });
  }
  r.pending.clear();
  ctx.metrics.Increment("fedlora_rounds_total", {"committed"});
  ctx.metrics.Set("fedlora_epsilon", ctx.training.epsilon());
  ctx.metrics.Set("fedlora_adapter_version", static_cast<double>(version->version));
  // The number summed is private: the log and the metrics do not carry it.
  ctx.log = absl::StrFormat("round %d committed: adapter version %d, epsilon %.4g", r.round,
                            version->version, ctx.training.epsilon());
  ctx.rounds_done++;
  return NextRound(ctx);
}

}  // namespace

std::unique_ptr<RoundState> MakeAdvertiseKeysState(absl::Time deadline) {
  return std::make_unique<SecAggPhaseState>(secagg::Phase::kAdvertiseKeys, deadline);
}

}  // namespace fedlora::coordinator
