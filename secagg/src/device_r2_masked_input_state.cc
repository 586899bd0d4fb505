#include "device_r2_masked_input_state.h"

#include "absl/strings/str_cat.h"
#include "derivations.h"
#include "device_r3_unmasking_state.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/secagg/aead.h"
#include "fedlora/secagg/bit_packing.h"
#include "fedlora/secagg/mask_prg.h"

namespace fedlora::secagg {

DeviceR2MaskedInputState::~DeviceR2MaskedInputState() { CleanseString(own_self_share_); }

absl::StatusOr<std::unique_ptr<DeviceState>> DeviceR2MaskedInputState::HandleMessage(
    const proto::SecAggServerMessage& message) {
  if (!message.has_masked_input_request()) return DeviceState::HandleMessage(message);
  FEDLORA_RETURN_IF_ERROR(CheckSessionId(message));
  const uint32_t me = ctx_->id;
  const auto& cfg = ctx_->config;

  // Open every share addressed to this device.
  std::map<uint32_t, HeldShares> held;
  for (const auto& share : message.masked_input_request().shares()) {
    const uint32_t v = share.peer();
    auto it = neighbours_.find(v);
    if (it == neighbours_.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "secagg: device ", me, " got a share from ", v,
          ", which is not a neighbour that advertised keys (hint: misrouted message)"));
    }
    if (held.count(v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("secagg: device ", me, " got two shares from device ", v));
    }
    const Secret32 key = ShareEncryptionKey(it->second.enc_shared, ctx_->session_id, v, me);
    auto plain = AeadOpen(key, ShareAad(ctx_->session_id, v, me), share.ciphertext());
    if (!plain.ok()) {
      return absl::Status(plain.status().code(),
                          absl::StrCat("secagg: device ", me, ": share from device ", v, ": ",
                                       plain.status().message(), "; device aborts"));
    }
    if (plain->size() != kSharePayloadBytes) {
      CleanseString(*plain);
      return absl::InvalidArgumentError(
          absl::StrCat("secagg: device ", me, ": share payload from ", v, " has wrong size"));
    }
    HeldShares& h = held[v];
    h.key_share = plain->substr(0, kSharePayloadBytes / 2);
    h.self_share = plain->substr(kSharePayloadBytes / 2);
    CleanseString(*plain);
  }
  const uint32_t t = cfg.threshold();
  if (held.size() + 1 < t) {
    return absl::FailedPreconditionError(absl::StrCat(
        "secagg: device ", me, " received shares from ", held.size(), " neighbours; threshold ", t,
        " needs ", t - 1, " (hint: too many dropouts; device aborts)"));
  }
  if (!ctx_->has_input) {
    return absl::FailedPreconditionError(
        absl::StrCat("secagg: device ", me,
                     " has no input (hint: call SetInput before the "
                     "masked-input round)"));
  }

  // y = x + PRG(b_u) +- PRG(s_uv), computed in place in the input buffer.
  std::vector<uint32_t> y = std::move(ctx_->input);
  ctx_->input.clear();
  ctx_->has_input = false;
  MaskExpander prg;
  prg.Apply(self_seed_, /*subtract=*/false, y.data(), y.size());
  self_seed_.Clear();
  for (const auto& [v, unused] : held) {
    FEDLORA_ASSIGN_OR_RETURN(Secret32 dh, mask_.Agree(neighbours_.at(v).mask_public_key));
    const Secret32 seed = PairwiseMaskSeed(dh, ctx_->session_id, me, v);
    prg.Apply(seed, /*subtract=*/!AddsPairwiseMask(me, v), y.data(), y.size());
  }
  proto::SecAggDeviceMessage out;
  auto* masked = out.mutable_masked_input();
  masked->set_dim(y.size());
  masked->set_bits(cfg.bits());
  masked->set_packed(PackBits(y.data(), y.size(), static_cast<int>(cfg.bits())));
  std::vector<uint32_t>().swap(y);
  ctx_->Send(out);
  return std::unique_ptr<DeviceState>(
      new DeviceR3UnmaskingState(ctx_, std::move(held), std::move(own_self_share_)));
}

}  // namespace fedlora::secagg
