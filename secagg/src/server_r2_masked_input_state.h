// R2 (server): collect packed masked inputs; on Proceed, add them up and ask each survivor for the
// shares needed to unmask.
#ifndef FEDLORA_SECAGG_SRC_SERVER_R2_MASKED_INPUT_STATE_H_
#define FEDLORA_SECAGG_SRC_SERVER_R2_MASKED_INPUT_STATE_H_

#include "server_state.h"

namespace fedlora::secagg {

class ServerR2MaskedInputState final : public ServerState {
 public:
  using ServerState::ServerState;
  Phase phase() const override { return Phase::kMaskedInput; }
  absl::StatusOr<std::unique_ptr<ServerState>> Proceed() override;
  int NumPending() const override;
  proto::SecAggDeviceMessage::PayloadCase expected_payload() const override {
    return proto::SecAggDeviceMessage::kMaskedInput;
  }

 protected:
  absl::Status Handle(uint32_t device, const proto::SecAggDeviceMessage& message) override;
};

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_SRC_SERVER_R2_MASKED_INPUT_STATE_H_
