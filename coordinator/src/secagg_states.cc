// The four secure-aggregation phases (the finish is finish_state.cc). The protocol logic is
// the secagg library's SecAggServer (its own per-phase states); these states add what a
// network needs: who may speak, deadlines, retries, and the replies. Every sampled device's
// message that arrives before its phase's deadline is taken (no reporting goal cuts a phase
// short: that would let one device's input displace another's).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "round_states.h"
#include "shard_phase.h"

namespace fedlora::coordinator {
namespace {

const char* kPhaseNames[] = {"advertise_keys", "share_keys", "masked_input", "unmasking"};

class SecAggPhaseState : public RoundState {
 public:
  SecAggPhaseState(secagg::Phase phase, absl::Time deadline) : phase_(phase), deadline_(deadline) {}
  const char* name() const override { return kPhaseNames[static_cast<int>(phase_)]; }
  absl::Time deadline() const override { return deadline_; }
  void SecAgg(RoundContext& ctx, const std::string& device, secagg::Phase phase,
              const v1::SecAggUpload& upload, const std::string& digest,
              RoundManager::SecAggDone done) override;
  bool Ready(const RoundContext& ctx) const override {
    if (ctx.now >= deadline_) return true;
    for (const ShardSession& shard : ctx.round.shards) {
      if (shard.server && !shard.dropped && shard.server->NumPending() > 0) return false;
    }
    return true;
  }
  std::unique_ptr<RoundState> Close(RoundContext& ctx) override;

 private:
  secagg::Phase phase_;
  absl::Time deadline_;
};

}  // namespace

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

void DropShard(RoundContext& ctx, ShardSession& shard, const absl::Status& why) {
  if (shard.dropped) return;
  shard.dropped = true;
  shard.why = why;
  // Its devices still in the protocol become dropouts; only a sharded round counts them here
  // (one session's abort is the round's, as it always was). An aggregator's shard: the leader
  // does not know who was still in it.
  if (ctx.round.shards.size() < 2 || !shard.server) return;
  for (uint32_t id = 0; id < shard.session.num_devices(); ++id) {
    if (shard.server->Outcome(id).reason == secagg::DropReason::kNone) {
      ctx.metrics.Increment("fedlora_device_drops_total", {"shard_dropped"});
    }
  }
}

namespace {

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
  auto slot = r.slots.find(device);
  if (slot == r.slots.end()) {
    return Fail(ctx, done, absl::PermissionDeniedError(absl::StrCat(
                               "device ", device, " is not in round ", r.round, "'s cohort")));
  }
  if (upload.message().device() != slot->second.id) {
    return Fail(ctx, done, absl::PermissionDeniedError(absl::StrCat(
                               "message names secure-aggregation device ",
                               upload.message().device(), " but this device is ", slot->second.id)));
  }
  if (phase != phase_) {
    return Fail(ctx, done, absl::FailedPreconditionError(absl::StrCat(
                               "wrong phase: ", secagg::PhaseName(phase), " called while round ",
                               r.round, " is in ", name())));
  }
  ShardSession& shard = r.shards[slot->second.shard];
  if (shard.remote) {
    return Fail(ctx, done, absl::FailedPreconditionError(absl::StrCat(
                               "shard ", slot->second.shard, " of round ", r.round,
                               " runs at aggregator ", shard.aggregator,
                               " (hint: send secure-aggregation calls to the task's "
                               "aggregator_address)")));
  }
  if (shard.dropped) {
    return Fail(ctx, done, absl::FailedPreconditionError(absl::StrCat(
                               "shard ", slot->second.shard, " of round ", r.round,
                               " was dropped: too few of its devices remained (hint: check in "
                               "again for a new task)")));
  }
  absl::Status why;
  switch (AcceptShardMessage(*shard.server, r.pending, device, upload.message(), digest, done,
                             ctx.completions, &why)) {
    case Accepted::kTaken:
    case Accepted::kRetry:
      return;
    case Accepted::kServerRefused: {
      auto outcome = shard.server->Outcome(slot->second.id);
      ctx.metrics.Increment("fedlora_device_drops_total", {secagg::DropReasonName(outcome.reason)});
      return Fail(ctx, done, why);
    }
    case Accepted::kRefused:
      return Fail(ctx, done, why);
  }
}

std::unique_ptr<RoundState> SecAggPhaseState::Close(RoundContext& ctx) {
  RoundData& r = ctx.round;
  // Unmasking's end is the round's heavy finish: off the manager's mutex (finish_state.cc).
  if (phase_ == secagg::Phase::kUnmasking) return MakeFinishingState(ctx);
  std::vector<std::map<uint32_t, proto::SecAggServerMessage>> messages(r.shards.size());
  bool completed = false;
  for (size_t k = 0; k < r.shards.size(); ++k) {
    ShardSession& shard = r.shards[k];
    if (shard.dropped || !shard.server) continue;  // an aggregator runs its own phases
    absl::Status s = shard.server->ProceedToNextPhase();
    messages[k] = shard.sender->Take();
    completed = completed || shard.server->phase() == secagg::Phase::kCompleted;
    if (!s.ok() || shard.server->phase() == secagg::Phase::kAborted) {
      DropShard(ctx, shard, s.ok() ? shard.server->abort_status() : s);
    }
  }
  const bool all_dropped = std::all_of(r.shards.begin(), r.shards.end(),
                                       [](const ShardSession& s) { return s.dropped; });
  if (!all_dropped && !completed) {
    for (auto& [device, p] : r.pending) {
      const SecAggSlot slot = r.slots[device];
      const ShardSession& shard = r.shards[slot.shard];
      v1::SecAggDownload d = PhaseReply(
          *shard.server, messages[slot.shard], slot.id, r.round, shard.dropped,
          absl::StrCat("dropped from round ", r.round, ": shard ", slot.shard,
                       " fell below its minimum and was dropped"));
      ctx.completions.push_back([done = std::move(p.done), d] { done(absl::OkStatus(), d); });
    }
    r.pending.clear();
  }
  if (all_dropped) {
    // Every shard fell below its minimum (one session: the round's abort, as ever).
    return AbortRound(ctx, PublicAbortReason(name(), r.shards.back().why));
  }
  if (completed) {  // only unmasking completes the protocol, and it returns above
    return AbortRound(ctx, "secure aggregation completed before unmasking (internal error)");
  }
  const auto next = static_cast<secagg::Phase>(static_cast<int>(phase_) + 1);
  return std::make_unique<SecAggPhaseState>(next, ctx.now + ctx.options.phase_deadline);
}

}  // namespace

std::unique_ptr<RoundState> MakeAdvertiseKeysState(absl::Time deadline) {
  return std::make_unique<SecAggPhaseState>(secagg::Phase::kAdvertiseKeys, deadline);
}

}  // namespace fedlora::coordinator
