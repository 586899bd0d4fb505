#include "device_state.h"

#include "absl/strings/str_cat.h"
#include "fedlora/secagg/secret.h"

namespace fedlora::secagg {
namespace {
const char* PayloadName(const proto::SecAggServerMessage& m) {
  switch (m.payload_case()) {
    case proto::SecAggServerMessage::kShareKeysRequest:
      return "ShareKeysRequest";
    case proto::SecAggServerMessage::kMaskedInputRequest:
      return "MaskedInputRequest";
    case proto::SecAggServerMessage::kUnmaskingRequest:
      return "UnmaskingRequest";
    case proto::SecAggServerMessage::kAbort:
      return "Abort";
    default:
      return "empty message";
  }
}
}  // namespace

void DeviceContext::Send(proto::SecAggDeviceMessage& message) const {
  message.set_device(id);
  message.set_round_nonce(config.round_nonce());
  message.set_session_id(session_id);
  sender->Send(message);
}

absl::StatusOr<std::unique_ptr<DeviceState>> DeviceState::Start() {
  return absl::FailedPreconditionError(absl::StrCat(
      "secagg: device ", ctx_->id, " already started (phase ", PhaseName(phase()), ")"));
}

absl::StatusOr<std::unique_ptr<DeviceState>> DeviceState::HandleMessage(
    const proto::SecAggServerMessage& message) {
  return absl::FailedPreconditionError(absl::StrCat(
      "secagg: device ", ctx_->id, " got ", PayloadName(message), " in phase ", PhaseName(phase()),
      " (hint: out-of-order or replayed server message; device aborts)"));
}

absl::Status DeviceState::CheckSessionId(const proto::SecAggServerMessage& message) const {
  if (!ConstantTimeEquals(message.session_id(), ctx_->session_id)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "secagg: device ", ctx_->id,
        " got a server message for another session (hint: replayed or cross-round message)"));
  }
  return absl::OkStatus();
}

}  // namespace fedlora::secagg
