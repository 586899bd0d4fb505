// R0 (device): generate the encryption and masking X25519 key pairs and advertise them.
#ifndef FEDLORA_SECAGG_SRC_DEVICE_R0_ADVERTISE_KEYS_STATE_H_
#define FEDLORA_SECAGG_SRC_DEVICE_R0_ADVERTISE_KEYS_STATE_H_

#include "device_state.h"

namespace fedlora::secagg {

class DeviceR0AdvertiseKeysState final : public DeviceState {
 public:
  using DeviceState::DeviceState;
  Phase phase() const override { return Phase::kAdvertiseKeys; }
  // Sends AdvertiseKeys; returns the R1 state awaiting the server's key list.
  absl::StatusOr<std::unique_ptr<DeviceState>> Start() override;
};

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_SRC_DEVICE_R0_ADVERTISE_KEYS_STATE_H_
