// R3 (server): collect revealed shares; on Proceed, rebuild self-mask seeds of survivors and
// masking keys of dropped devices, remove every mask (expanding each PRG once) and complete.
#ifndef FEDLORA_SECAGG_SRC_SERVER_R3_UNMASKING_STATE_H_
#define FEDLORA_SECAGG_SRC_SERVER_R3_UNMASKING_STATE_H_

#include "server_state.h"

namespace fedlora::secagg {

class ServerR3UnmaskingState final : public ServerState {
 public:
  using ServerState::ServerState;
  Phase phase() const override { return Phase::kUnmasking; }
  absl::StatusOr<std::unique_ptr<ServerState>> Proceed() override;
  int NumPending() const override;
  proto::SecAggDeviceMessage::PayloadCase expected_payload() const override {
    return proto::SecAggDeviceMessage::kUnmasking;
  }

 protected:
  absl::Status Handle(uint32_t device, const proto::SecAggDeviceMessage& message) override;
};

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_SRC_SERVER_R3_UNMASKING_STATE_H_
