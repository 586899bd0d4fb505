#include "server_r0_advertise_keys_state.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "derivations.h"
#include "fedlora/secagg/key_agreement.h"
#include "server_r1_share_keys_state.h"

namespace fedlora::secagg {

absl::Status ServerR0AdvertiseKeysState::Handle(uint32_t u,
                                                const proto::SecAggDeviceMessage& message) {
  if (!message.has_advertise_keys()) return ServerState::Handle(u, message);
  ServerDeviceRecord& rec = ctx_->devices[u];
  if (rec.advertised) {
    return Reject(u, DropReason::kDuplicateMessage,
                  absl::FailedPreconditionError(absl::StrCat(
                      "secagg: device ", u, " advertised keys twice (device dropped)")));
  }
  const auto& adv = message.advertise_keys();
  if (adv.enc_public_key().size() != kX25519KeySize ||
      adv.mask_public_key().size() != kX25519KeySize ||
      adv.enc_public_key() == adv.mask_public_key()) {
    return Reject(u, DropReason::kMalformedMessage,
                  absl::InvalidArgumentError(absl::StrCat(
                      "secagg: device ", u,
                      " advertised malformed keys (expected two distinct 32-byte X25519 "
                      "keys; device dropped)")));
  }
  // Keys must be unique across devices, or honest devices would reject the key list.
  for (const auto& other : ctx_->devices) {
    if (!other.advertised) continue;
    if (other.enc_pk == adv.enc_public_key() || other.enc_pk == adv.mask_public_key() ||
        other.mask_pk == adv.enc_public_key() || other.mask_pk == adv.mask_public_key()) {
      return Reject(u, DropReason::kMalformedMessage,
                    absl::InvalidArgumentError(absl::StrCat(
                        "secagg: device ", u,
                        " advertised a key already used by another device (device dropped)")));
    }
  }
  rec.advertised = true;
  rec.enc_pk = adv.enc_public_key();
  rec.mask_pk = adv.mask_public_key();
  return absl::OkStatus();
}

int ServerR0AdvertiseKeysState::NumPending() const {
  return CountPending(&ServerDeviceRecord::advertised, nullptr);
}

absl::StatusOr<std::unique_ptr<ServerState>> ServerR0AdvertiseKeysState::Proceed() {
  DropSilent(&ServerDeviceRecord::advertised, nullptr);
  const uint32_t t = ctx_->config.threshold();
  KeyListHasher hasher;
  uint32_t count = 0;
  for (uint32_t u = 0; u < ctx_->devices.size(); ++u) {
    const auto& rec = ctx_->devices[u];
    if (!rec.AdvertisedAndActive()) continue;
    ctx_->devices[u].in_u1 = true;
    hasher.Add(u, rec.enc_pk, rec.mask_pk);
    ++count;
  }
  if (count < t) {
    return Abort(absl::FailedPreconditionError(
        absl::StrCat("secagg: only ", count, " devices advertised keys, threshold ", t,
                     " (hint: too many dropouts; round aborted, no input was sent)")));
  }
  const std::string digest = hasher.Finish();
  ctx_->session_id = ComputeSessionId(ctx_->config, digest);
  for (uint32_t u = 0; u < ctx_->devices.size(); ++u) {
    if (!ctx_->devices[u].AdvertisedAndActive()) continue;
    proto::SecAggServerMessage msg;
    auto* req = msg.mutable_share_keys_request();
    req->set_key_list_digest(digest);
    std::vector<uint32_t> group = ctx_->Neighbours(u);
    group.push_back(u);
    std::sort(group.begin(), group.end());
    for (uint32_t v : group) {
      const auto& rv = ctx_->devices[v];
      if (!rv.AdvertisedAndActive()) continue;
      auto* k = req->add_keys();
      k->set_device(v);
      k->set_enc_public_key(rv.enc_pk);
      k->set_mask_public_key(rv.mask_pk);
    }
    ctx_->Send(u, msg);
  }
  return std::unique_ptr<ServerState>(new ServerR1ShareKeysState(ctx_));
}

}  // namespace fedlora::secagg
