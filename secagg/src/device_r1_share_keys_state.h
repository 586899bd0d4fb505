// R1 (device): check the server's key list, derive the session id, Shamir-share the masking
// private key and a fresh self-mask seed among the neighbourhood, and send each neighbour
// its shares sealed with AES-256-GCM under a key agreed with that neighbour.
#ifndef FEDLORA_SECAGG_SRC_DEVICE_R1_SHARE_KEYS_STATE_H_
#define FEDLORA_SECAGG_SRC_DEVICE_R1_SHARE_KEYS_STATE_H_

#include "device_state.h"
#include "fedlora/secagg/key_agreement.h"

namespace fedlora::secagg {

class DeviceR1ShareKeysState final : public DeviceState {
 public:
  DeviceR1ShareKeysState(DeviceContext* ctx, X25519KeyPair enc, X25519KeyPair mask)
      : DeviceState(ctx), enc_(std::move(enc)), mask_(std::move(mask)) {}
  Phase phase() const override { return Phase::kShareKeys; }

  // Handles ShareKeysRequest. Errors (the device aborts): INVALID_ARGUMENT for a malformed
  // key list (unsorted, duplicate ids or keys, non-neighbours, own keys missing or altered,
  // digest or session id mismatch); FAILED_PRECONDITION when fewer than t - 1 neighbours
  // advertised keys.
  absl::StatusOr<std::unique_ptr<DeviceState>> HandleMessage(
      const proto::SecAggServerMessage& message) override;

 private:
  X25519KeyPair enc_;
  X25519KeyPair mask_;
};

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_SRC_DEVICE_R1_SHARE_KEYS_STATE_H_
