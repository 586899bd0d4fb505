// R3 (device): reveal, for each neighbour the server names, exactly one of its two secrets'
// shares: the self-mask share if it survived, the masking-key share if it dropped. Refuses
// (aborts) when asked for both for the same device, or when too few neighbours survived.
#ifndef FEDLORA_SECAGG_SRC_DEVICE_R3_UNMASKING_STATE_H_
#define FEDLORA_SECAGG_SRC_DEVICE_R3_UNMASKING_STATE_H_

#include <map>
#include <string>

#include "device_state.h"

namespace fedlora::secagg {

// The two shares a neighbour sent this device (serialized, 40 bytes each).
struct HeldShares {
  std::string key_share;
  std::string self_share;
  ~HeldShares();
};

class DeviceR3UnmaskingState final : public DeviceState {
 public:
  DeviceR3UnmaskingState(DeviceContext* ctx, std::map<uint32_t, HeldShares> held,
                         std::string own_self_share)
      : DeviceState(ctx), held_(std::move(held)), own_self_share_(std::move(own_self_share)) {}
  ~DeviceR3UnmaskingState() override;
  Phase phase() const override { return Phase::kUnmasking; }

  // Handles UnmaskingRequest. Errors (the device aborts without revealing anything):
  // PERMISSION_DENIED when a device is listed both as survivor and as dropped, or itself as
  // dropped; INVALID_ARGUMENT for ids it holds no shares of, repeated ids or a session
  // mismatch; FAILED_PRECONDITION when fewer than t - 1 neighbours survived.
  absl::StatusOr<std::unique_ptr<DeviceState>> HandleMessage(
      const proto::SecAggServerMessage& message) override;

 private:
  std::map<uint32_t, HeldShares> held_;
  std::string own_self_share_;
};

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_SRC_DEVICE_R3_UNMASKING_STATE_H_
