// The round's states, one small class each (federated-compute's style). The manager holds the
// current state, forwards calls to it and, when Ready(), calls Close() and switches to the
// state it returns. A state with long work (the finish: unmasking, decoding, the server step,
// the store commit) hands it out through TakeJob(); the manager runs it on its worker thread
// without its mutex and the state becomes Ready() when the job is done.
#ifndef FEDLORA_COORDINATOR_SRC_ROUND_STATES_H_
#define FEDLORA_COORDINATOR_SRC_ROUND_STATES_H_

#include <functional>
#include <memory>
#include <string>

#include "round_context.h"

namespace fedlora::coordinator {

class RoundState {
 public:
  virtual ~RoundState() = default;
  virtual const char* name() const = 0;
  // Default: no round is open for new devices; come back later (pace-steered window).
  virtual void CheckIn(RoundContext& ctx, const std::string& device,
                       const v1::CheckInRequest& request, RoundManager::CheckInDone done);
  // Default: FAILED_PRECONDITION (no secure-aggregation phase is open).
  // `digest` identifies the upload's bytes (retries).
  virtual void SecAgg(RoundContext& ctx, const std::string& device, secagg::Phase phase,
                      const v1::SecAggUpload& upload, const std::string& digest,
                      RoundManager::SecAggDone done);
  virtual bool Ready(const RoundContext& ctx) const = 0;
  // Leaves the state; returns the next one (never null).
  virtual std::unique_ptr<RoundState> Close(RoundContext& ctx) = 0;
  // The time the state closes at the latest (InfiniteFuture when it waits for devices).
  virtual absl::Time deadline() const { return absl::InfiniteFuture(); }
  // True once training is over (no further rounds).
  virtual bool terminal() const { return false; }
  // Work to run off the manager's mutex, taken once right after the state is entered (null:
  // none). It may touch only what the state handed it and ctx.training, ctx.store and
  // ctx.metrics (thread-safe); the manager touches none of the round's secure-aggregation
  // server or the training until the state is Ready().
  virtual std::function<void()> TakeJob() { return nullptr; }
};

// A fixed selection window from the round's opening: every eligible check-in gets one Poisson
// coin; sampled devices wait for the window's end.
std::unique_ptr<RoundState> MakeSelectingState();
// Training is over (round limit reached or the privacy budget spent).
std::unique_ptr<RoundState> MakeFinishedState(std::string why);

// The finish of a round whose unmasking phase closed (finish_state.cc): "committing". Its job
// unmasks (SecAggServer::ProceedToNextPhase), decodes and applies the server step, and commits
// the new version to the store; Close() then replies to the devices and opens the next round,
// or aborts. Check-ins meanwhile are answered at once (REJECTION_NO_ROUND_OPEN, pace-steered).
std::unique_ptr<RoundState> MakeFinishingState(RoundContext& ctx);

// The public reason for a secure-aggregation abort in `phase` (no private counts).
std::string PublicAbortReason(const char* phase, const absl::Status& why);

// Marks a shard whose session aborted (below its minimum, or forged shares) as dropped, once:
// it is never unmasked; in a sharded round its devices still in the protocol are counted as
// dropouts (fedlora_device_drops_total{reason="shard_dropped"}).
void DropShard(RoundContext& ctx, ShardSession& shard, const absl::Status& why);

// Commits the round's privacy charge (r.plan's mechanism) and its participants to the store,
// once; sets r.charged. The store's error otherwise (nothing charged).
absl::Status ChargeInStore(RoundContext& ctx);
// Ends the round: replies to everyone still waiting; a round charged in the store is charged
// in the accountant too (unless already) and recorded aborted with the reason. Returns the
// next round's first state.
std::unique_ptr<RoundState> AbortRound(RoundContext& ctx, const std::string& reason);
// The state after a finished round: selecting, or finished at the round limit.
std::unique_ptr<RoundState> NextRound(RoundContext& ctx);

// Rejection helpers (pace steering: the window starts when the current round should end).
// `counted` = false keeps the rejection out of the metrics (replies to coin flips and to
// sampled devices: their numbers are private).
v1::CheckInResponse Reject(const RoundContext& ctx, v1::RejectionReason reason,
                           const std::string& detail, absl::Duration earliest, bool counted = true);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_SRC_ROUND_STATES_H_
