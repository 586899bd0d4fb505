#include "device_r1_share_keys_state.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "derivations.h"
#include "device_r2_masked_input_state.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/secagg/aead.h"
#include "fedlora/secagg/shamir.h"

namespace fedlora::secagg {

absl::StatusOr<std::unique_ptr<DeviceState>> DeviceR1ShareKeysState::HandleMessage(
    const proto::SecAggServerMessage& message) {
  if (!message.has_share_keys_request()) return DeviceState::HandleMessage(message);
  const auto& req = message.share_keys_request();
  const uint32_t me = ctx_->id;
  const auto& cfg = ctx_->config;
  const bool complete = cfg.graph() == proto::SECAGG_GRAPH_COMPLETE;
  auto bad = [me](const std::string& what) {
    return absl::InvalidArgumentError(
        absl::StrCat("secagg: device ", me, " rejects the key list: ", what,
                     " (hint: faulty or malicious server; device aborts)"));
  };

  // Validate the key list: ascending ids, only self and neighbours, distinct keys.
  std::set<std::string> seen_keys;
  std::map<uint32_t, const proto::SecAggPublicKeys*> neighbour_entries;
  bool saw_self = false;
  KeyListHasher hasher;
  int64_t prev = -1;
  for (const auto& k : req.keys()) {
    if (static_cast<int64_t>(k.device()) <= prev) return bad("ids not strictly ascending");
    prev = k.device();
    if (k.enc_public_key().size() != kX25519KeySize ||
        k.mask_public_key().size() != kX25519KeySize) {
      return bad(absl::StrCat("device ", k.device(), " has keys of the wrong size"));
    }
    if (!seen_keys.insert(k.enc_public_key()).second ||
        !seen_keys.insert(k.mask_public_key()).second) {
      return bad(absl::StrCat("device ", k.device(), " repeats a public key"));
    }
    hasher.Add(k.device(), k.enc_public_key(), k.mask_public_key());
    if (k.device() == me) {
      if (!ConstantTimeEquals(k.enc_public_key(), enc_.public_key()) ||
          !ConstantTimeEquals(k.mask_public_key(), mask_.public_key())) {
        return bad("own public keys altered");
      }
      saw_self = true;
    } else if (std::binary_search(ctx_->neighbours.begin(), ctx_->neighbours.end(), k.device())) {
      neighbour_entries[k.device()] = &k;
    } else {
      return bad(absl::StrCat("device ", k.device(), " is not a neighbour"));
    }
  }
  if (!saw_self) return bad("own keys missing");
  // In the complete graph the device sees every advertised key and checks the digest itself.
  std::string digest = hasher.Finish();
  if (complete) {
    if (!ConstantTimeEquals(digest, req.key_list_digest())) return bad("key digest mismatch");
  } else {
    if (req.key_list_digest().size() != 32) return bad("key digest not 32 bytes");
    digest = req.key_list_digest();
  }
  ctx_->session_id = ComputeSessionId(cfg, digest);
  FEDLORA_RETURN_IF_ERROR(CheckSessionId(message));

  const uint32_t t = cfg.threshold();
  if (neighbour_entries.size() + 1 < t) {
    return absl::FailedPreconditionError(
        absl::StrCat("secagg: device ", me, " has ", neighbour_entries.size(),
                     " neighbours with keys; threshold ", t, " needs ", t - 1,
                     " (hint: too many dropouts before sharing; device aborts)"));
  }

  // Share the masking private key and a fresh self-mask seed among neighbours and self.
  Secret32 self_seed = NextSecret(*ctx_->rng);
  std::vector<uint64_t> xs;
  xs.reserve(neighbour_entries.size() + 1);
  for (const auto& [v, entry] : neighbour_entries) xs.push_back(uint64_t{v} + 1);
  xs.push_back(uint64_t{me} + 1);
  FEDLORA_ASSIGN_OR_RETURN(auto key_shares,
                           ShamirSplit(mask_.private_key(), static_cast<int>(t), xs, *ctx_->rng));
  FEDLORA_ASSIGN_OR_RETURN(auto seed_shares,
                           ShamirSplit(self_seed, static_cast<int>(t), xs, *ctx_->rng));

  proto::SecAggDeviceMessage out;
  auto* resp = out.mutable_share_keys();
  std::map<uint32_t, NeighbourKeys> neighbours;
  size_t i = 0;
  for (const auto& [v, entry] : neighbour_entries) {
    auto dh = enc_.Agree(entry->enc_public_key());
    if (!dh.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("secagg: device ", me, ": neighbour ", v,
                       " advertised an unusable key: ", dh.status().message()));
    }
    std::string payload = SerializeShare(key_shares[i]) + SerializeShare(seed_shares[i]);
    const Secret32 key = ShareEncryptionKey(*dh, ctx_->session_id, me, v);
    auto* share = resp->add_shares();
    share->set_peer(v);
    share->set_ciphertext(AeadSeal(key, ShareAad(ctx_->session_id, me, v), payload, *ctx_->rng));
    CleanseString(payload);
    neighbours[v] = NeighbourKeys{entry->mask_public_key(), *dh};
    ++i;
  }
  std::string own_self_share = SerializeShare(seed_shares.back());
  ctx_->Send(out);
  return std::unique_ptr<DeviceState>(new DeviceR2MaskedInputState(
      ctx_, std::move(mask_), std::move(neighbours), self_seed, std::move(own_self_share)));
}

}  // namespace fedlora::secagg
