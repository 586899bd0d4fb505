#include "server_context.h"

namespace fedlora::secagg {

absl::Status ServerContext::Drop(uint32_t device, Phase phase, DropReason reason,
                                 absl::Status status) {
  ServerDeviceRecord& rec = devices[device];
  if (!rec.dropped) {
    rec.dropped = true;
    rec.dropped_in = phase;
    rec.reason = reason;
    rec.detail = std::string(status.message());
    ++drop_counts[static_cast<int>(reason)];
    rec.outgoing_shares.clear();
  }
  return status;
}

void ServerContext::Send(uint32_t device, proto::SecAggServerMessage& message) {
  message.set_session_id(session_id);
  sender->Send(device, message);
}

void ServerContext::BroadcastAbort(const std::string& reason) {
  for (uint32_t u = 0; u < devices.size(); ++u) {
    if (devices[u].dropped) continue;
    proto::SecAggServerMessage msg;
    msg.mutable_abort()->set_reason(reason);
    Send(u, msg);
  }
}

}  // namespace fedlora::secagg
