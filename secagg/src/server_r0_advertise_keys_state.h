// R0 (server): collect each device's two public keys; on Proceed, derive the session id and send
// every device the keys of its neighbourhood.
#ifndef FEDLORA_SECAGG_SRC_SERVER_R0_ADVERTISE_KEYS_STATE_H_
#define FEDLORA_SECAGG_SRC_SERVER_R0_ADVERTISE_KEYS_STATE_H_

#include "server_state.h"

namespace fedlora::secagg {

class ServerR0AdvertiseKeysState final : public ServerState {
 public:
  using ServerState::ServerState;
  Phase phase() const override { return Phase::kAdvertiseKeys; }
  absl::StatusOr<std::unique_ptr<ServerState>> Proceed() override;
  int NumPending() const override;
  proto::SecAggDeviceMessage::PayloadCase expected_payload() const override {
    return proto::SecAggDeviceMessage::kAdvertiseKeys;
  }

 protected:
  absl::Status Handle(uint32_t device, const proto::SecAggDeviceMessage& message) override;
};

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_SRC_SERVER_R0_ADVERTISE_KEYS_STATE_H_
