#include "server_state.h"

#include "absl/strings/str_cat.h"
#include "fedlora/secagg/secret.h"

namespace fedlora::secagg {

absl::Status ServerState::HandleMessage(const proto::SecAggDeviceMessage& message) {
  const uint32_t u = message.device();
  if (u >= ctx_->devices.size()) {
    ++ctx_->rejected_unknown_device;
    return absl::InvalidArgumentError(absl::StrCat(
        "secagg: message from device ", u, ", which is outside the round (", ctx_->devices.size(),
        " devices) (hint: stale or forged device id; message ignored)"));
  }
  if (ctx_->devices[u].dropped) {
    return absl::FailedPreconditionError(
        absl::StrCat("secagg: message from device ", u, ", already dropped (",
                     DropReasonName(ctx_->devices[u].reason), "); ignored"));
  }
  if (phase() == Phase::kCompleted || phase() == Phase::kAborted) {
    return absl::FailedPreconditionError(
        absl::StrCat("secagg: message from device ", u, " after the round ended; ignored"));
  }
  if (!ConstantTimeEquals(message.round_nonce(), ctx_->config.round_nonce())) {
    return Reject(u, DropReason::kWrongSession,
                  absl::InvalidArgumentError(absl::StrCat(
                      "secagg: message from device ", u,
                      " carries another round's nonce (hint: replayed or cross-round message; "
                      "device dropped)")));
  }
  if (message.has_abort()) {
    return Reject(u, DropReason::kDeviceAborted,
                  absl::AbortedError(
                      absl::StrCat("secagg: device ", u, " aborted: ", message.abort().reason())));
  }
  if (message.payload_case() != expected_payload()) return ServerState::Handle(u, message);
  if (phase() != Phase::kAdvertiseKeys &&
      !ConstantTimeEquals(message.session_id(), ctx_->session_id)) {
    return Reject(u, DropReason::kWrongSession,
                  absl::InvalidArgumentError(absl::StrCat(
                      "secagg: message from device ", u,
                      " carries a wrong session id (hint: replayed or cross-round message; "
                      "device dropped)")));
  }
  return Handle(u, message);
}

absl::Status ServerState::Handle(uint32_t device, const proto::SecAggDeviceMessage& message) {
  return Reject(
      device, DropReason::kUnexpectedMessage,
      absl::FailedPreconditionError(absl::StrCat(
          "secagg: device ", device, " sent payload #", message.payload_case(), " in phase ",
          PhaseName(phase()), " (hint: out-of-order or replayed message; device dropped)")));
}

absl::StatusOr<std::unique_ptr<ServerState>> ServerState::Proceed() {
  return absl::FailedPreconditionError(
      absl::StrCat("secagg: server cannot proceed from phase ", PhaseName(phase())));
}

void ServerState::DropSilent(bool ServerDeviceRecord::*flag,
                             bool ServerDeviceRecord::*prerequisite) {
  for (uint32_t u = 0; u < ctx_->devices.size(); ++u) {
    const ServerDeviceRecord& rec = ctx_->devices[u];
    if (rec.dropped || rec.*flag) continue;
    if (prerequisite != nullptr && !(rec.*prerequisite)) continue;
    (void)ctx_->Drop(u, phase(), DropReason::kNoResponse,
                     absl::DeadlineExceededError(absl::StrCat("no ", PhaseName(phase()),
                                                              " message before the phase closed")));
  }
}

int ServerState::CountPending(bool ServerDeviceRecord::*flag,
                              bool ServerDeviceRecord::*prerequisite) const {
  int n = 0;
  for (const auto& rec : ctx_->devices) {
    if (rec.dropped || rec.*flag) continue;
    if (prerequisite != nullptr && !(rec.*prerequisite)) continue;
    ++n;
  }
  return n;
}

std::unique_ptr<ServerState> ServerState::Abort(absl::Status status) {
  ctx_->BroadcastAbort(std::string(status.message()));
  return std::make_unique<ServerAbortedState>(ctx_, std::move(status));
}

}  // namespace fedlora::secagg
