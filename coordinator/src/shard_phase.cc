#include "shard_phase.h"

#include "absl/strings/str_cat.h"

namespace fedlora::coordinator {

Accepted AcceptShardMessage(secagg::SecAggServer& server,
                            std::map<std::string, PendingReply>& pending, const std::string& device,
                            const proto::SecAggDeviceMessage& message, const std::string& digest,
                            RoundManager::SecAggDone& done,
                            std::vector<std::function<void()>>& completions, absl::Status* why) {
  auto waiting = pending.find(device);
  if (waiting != pending.end()) {
    if (waiting->second.message_bytes != digest) {
      *why =
          absl::FailedPreconditionError("a different message was already received in this phase");
      return Accepted::kRefused;
    }
    // An identical retry (the first call's connection broke): the newest call gets the reply.
    auto old = std::move(waiting->second.done);
    completions.push_back([old] { old(absl::AbortedError("superseded by a retry"), {}); });
    waiting->second.done = std::move(done);
    return Accepted::kRetry;
  }
  if (absl::Status s = server.HandleMessage(message); !s.ok()) {
    *why = s;
    return Accepted::kServerRefused;
  }
  pending[device] = PendingReply{std::move(done), digest};
  return Accepted::kTaken;
}

v1::SecAggDownload PhaseReply(const secagg::SecAggServer& server,
                              const std::map<uint32_t, proto::SecAggServerMessage>& messages,
                              uint32_t id, uint64_t round, bool shard_dropped,
                              const std::string& dropped_detail) {
  v1::SecAggDownload d;
  auto m = messages.find(id);
  if (!shard_dropped && m != messages.end() && !m->second.has_abort()) {
    d.set_status(v1::SecAggDownload::STATUS_NEXT);
    *d.mutable_message() = m->second;
  } else {
    d.set_status(v1::SecAggDownload::STATUS_ABORTED);
    d.set_detail(shard_dropped
                     ? dropped_detail
                     : absl::StrCat("dropped from round ", round, ": ", server.Outcome(id).detail));
  }
  return d;
}

}  // namespace fedlora::coordinator
