#include "server_r1_share_keys_state.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "derivations.h"
#include "server_r2_masked_input_state.h"

namespace fedlora::secagg {

absl::Status ServerR1ShareKeysState::Handle(uint32_t u, const proto::SecAggDeviceMessage& message) {
  if (!message.has_share_keys()) return ServerState::Handle(u, message);
  ServerDeviceRecord& rec = ctx_->devices[u];
  if (rec.shared) {
    return Reject(u, DropReason::kDuplicateMessage,
                  absl::FailedPreconditionError(
                      absl::StrCat("secagg: device ", u, " sent shares twice (device dropped)")));
  }
  // Exactly one share per neighbour in U1, each of the sealed-share size.
  std::vector<uint32_t> expected;
  for (uint32_t v : ctx_->Neighbours(u)) {
    if (ctx_->devices[v].in_u1) expected.push_back(v);
  }
  std::vector<uint32_t> got;
  const auto& shares = message.share_keys().shares();
  got.reserve(shares.size());
  for (const auto& s : shares) {
    if (s.ciphertext().size() != kSealedShareBytes) {
      return Reject(u, DropReason::kMalformedMessage,
                    absl::InvalidArgumentError(
                        absl::StrCat("secagg: device ", u, " sent a share of ",
                                     s.ciphertext().size(), " bytes for device ", s.peer(),
                                     ", expected ", kSealedShareBytes, " (device dropped)")));
    }
    got.push_back(s.peer());
  }
  std::sort(got.begin(), got.end());
  if (got != expected) {
    return Reject(u, DropReason::kMalformedMessage,
                  absl::InvalidArgumentError(
                      absl::StrCat("secagg: device ", u, " sent shares for ", got.size(),
                                   " devices, expected one for each of its ", expected.size(),
                                   " neighbours that advertised keys (device dropped)")));
  }
  rec.shared = true;
  rec.outgoing_shares.assign(shares.begin(), shares.end());
  return absl::OkStatus();
}

int ServerR1ShareKeysState::NumPending() const {
  return CountPending(&ServerDeviceRecord::shared, &ServerDeviceRecord::in_u1);
}

absl::StatusOr<std::unique_ptr<ServerState>> ServerR1ShareKeysState::Proceed() {
  DropSilent(&ServerDeviceRecord::shared, &ServerDeviceRecord::in_u1);
  const uint32_t t = ctx_->config.threshold();
  const size_t n = ctx_->devices.size();
  auto in_u2 = [&](uint32_t v) { return ctx_->devices[v].shared && !ctx_->devices[v].dropped; };
  uint32_t count = 0;
  for (uint32_t u = 0; u < n; ++u) {
    ctx_->devices[u].in_u2 = in_u2(u);
    count += in_u2(u);
  }
  if (count < t) {
    return Abort(absl::FailedPreconditionError(
        absl::StrCat("secagg: only ", count, " devices shared keys, threshold ", t,
                     " (hint: too many dropouts; round aborted, no input was sent)")));
  }
  // Route every share from a sender in U2 to its receiver in U2.
  std::vector<proto::SecAggServerMessage> out(n);
  for (uint32_t v = 0; v < n; ++v) {
    ServerDeviceRecord& rec = ctx_->devices[v];
    if (!in_u2(v)) {
      rec.outgoing_shares.clear();
      continue;
    }
    for (auto& s : rec.outgoing_shares) {
      if (!in_u2(s.peer())) continue;
      auto* fwd = out[s.peer()].mutable_masked_input_request()->add_shares();
      fwd->set_peer(v);
      fwd->set_ciphertext(std::move(*s.mutable_ciphertext()));
    }
    std::vector<proto::SecAggEncryptedShare>().swap(rec.outgoing_shares);
  }
  for (uint32_t u = 0; u < n; ++u) {
    if (!in_u2(u)) continue;
    out[u].mutable_masked_input_request();  // present even when empty
    ctx_->Send(u, out[u]);
    out[u].Clear();
  }
  return std::unique_ptr<ServerState>(new ServerR2MaskedInputState(ctx_));
}

}  // namespace fedlora::secagg
