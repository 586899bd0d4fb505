// R1 (server): collect each device's sealed shares, one per neighbour that advertised; on Proceed,
// forward to every device the shares addressed to it.
#ifndef FEDLORA_SECAGG_SRC_SERVER_R1_SHARE_KEYS_STATE_H_
#define FEDLORA_SECAGG_SRC_SERVER_R1_SHARE_KEYS_STATE_H_

#include "server_state.h"

namespace fedlora::secagg {

class ServerR1ShareKeysState final : public ServerState {
 public:
  using ServerState::ServerState;
  Phase phase() const override { return Phase::kShareKeys; }
  absl::StatusOr<std::unique_ptr<ServerState>> Proceed() override;
  int NumPending() const override;
  proto::SecAggDeviceMessage::PayloadCase expected_payload() const override {
    return proto::SecAggDeviceMessage::kShareKeys;
  }

 protected:
  absl::Status Handle(uint32_t device, const proto::SecAggDeviceMessage& message) override;
};

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_SRC_SERVER_R1_SHARE_KEYS_STATE_H_
