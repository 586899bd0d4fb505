// One shard's secure-aggregation phase, as the leader (secagg_states.cc) and an aggregator
// process (aggregator_rounds.cc) both run it: taking a device's message (an identical retry
// replaces the waiting call, a different second message is refused) and the reply each waiting
// device gets when the phase closes.
#ifndef FEDLORA_COORDINATOR_SRC_SHARD_PHASE_H_
#define FEDLORA_COORDINATOR_SRC_SHARD_PHASE_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "round_context.h"

namespace fedlora::coordinator {

// How AcceptShardMessage ended.
enum class Accepted { kTaken, kRetry, kRefused, kServerRefused };

// Takes `device`'s (session index `id`) message of the current phase into `server`, keeping
// `done` in `pending` until the phase closes. kRetry: an identical retry (same `digest`) took
// over the waiting call (the superseded one is answered ABORTED through `completions`);
// kRefused: a different second message (`*why`); kServerRefused: the server refused it (the
// device is dropped; `*why`). `done` is left untouched unless taken.
Accepted AcceptShardMessage(secagg::SecAggServer& server,
                            std::map<std::string, PendingReply>& pending, const std::string& device,
                            const proto::SecAggDeviceMessage& message, const std::string& digest,
                            RoundManager::SecAggDone& done,
                            std::vector<std::function<void()>>& completions, absl::Status* why);

// The reply to device `id` of a shard whose phase just closed with `messages` (the server's
// next requests): STATUS_NEXT with its message, or STATUS_ABORTED with why (`dropped_detail`
// when the shard was dropped, else the server's outcome for the device).
v1::SecAggDownload PhaseReply(const secagg::SecAggServer& server,
                              const std::map<uint32_t, proto::SecAggServerMessage>& messages,
                              uint32_t id, uint64_t round, bool shard_dropped,
                              const std::string& dropped_detail);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_SRC_SHARD_PHASE_H_
