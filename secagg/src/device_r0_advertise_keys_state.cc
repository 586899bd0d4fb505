#include "device_r0_advertise_keys_state.h"

#include "device_r1_share_keys_state.h"
#include "fedlora/secagg/key_agreement.h"

namespace fedlora::secagg {

absl::StatusOr<std::unique_ptr<DeviceState>> DeviceR0AdvertiseKeysState::Start() {
  X25519KeyPair enc = X25519KeyPair::Generate(*ctx_->rng);
  X25519KeyPair mask = X25519KeyPair::Generate(*ctx_->rng);
  proto::SecAggDeviceMessage msg;
  auto* adv = msg.mutable_advertise_keys();
  adv->set_enc_public_key(enc.public_key());
  adv->set_mask_public_key(mask.public_key());
  ctx_->Send(msg);
  return std::unique_ptr<DeviceState>(
      new DeviceR1ShareKeysState(ctx_, std::move(enc), std::move(mask)));
}

}  // namespace fedlora::secagg
