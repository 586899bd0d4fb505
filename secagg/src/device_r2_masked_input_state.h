// R2 (device): open the shares received from neighbours, then send
//   y = x + PRG(b_u) + sum_{v > u} PRG(s_uv) - sum_{v < u} PRG(s_uv)   (mod 2^b)
// over the neighbours v whose shares arrived, packed at b bits per entry.
#ifndef FEDLORA_SECAGG_SRC_DEVICE_R2_MASKED_INPUT_STATE_H_
#define FEDLORA_SECAGG_SRC_DEVICE_R2_MASKED_INPUT_STATE_H_

#include <map>

#include "device_state.h"
#include "fedlora/secagg/key_agreement.h"
#include "fedlora/secagg/shamir.h"

namespace fedlora::secagg {

// A neighbour that advertised keys, as seen from this device.
struct NeighbourKeys {
  std::string mask_public_key;
  Secret32 enc_shared;  // X25519(own enc key, neighbour's enc key)
};

class DeviceR2MaskedInputState final : public DeviceState {
 public:
  DeviceR2MaskedInputState(DeviceContext* ctx, X25519KeyPair mask,
                           std::map<uint32_t, NeighbourKeys> neighbours, Secret32 self_seed,
                           std::string own_self_share)
      : DeviceState(ctx),
        mask_(std::move(mask)),
        neighbours_(std::move(neighbours)),
        self_seed_(self_seed),
        own_self_share_(std::move(own_self_share)) {}
  ~DeviceR2MaskedInputState() override;
  Phase phase() const override { return Phase::kMaskedInput; }

  // Handles MaskedInputRequest. Errors (the device aborts): INVALID_ARGUMENT for a share from
  // a non-neighbour or a repeated sender, or a session mismatch; DATA_LOSS for a share that
  // fails authentication (tampered); FAILED_PRECONDITION when fewer than t - 1 neighbours
  // sent shares or no input was set.
  absl::StatusOr<std::unique_ptr<DeviceState>> HandleMessage(
      const proto::SecAggServerMessage& message) override;

 private:
  X25519KeyPair mask_;
  std::map<uint32_t, NeighbourKeys> neighbours_;
  Secret32 self_seed_;
  std::string own_self_share_;
};

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_SRC_DEVICE_R2_MASKED_INPUT_STATE_H_
