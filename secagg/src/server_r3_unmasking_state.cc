#include "server_r3_unmasking_state.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "derivations.h"
#include "fedlora/secagg/key_agreement.h"
#include "fedlora/secagg/mask_prg.h"

namespace fedlora::secagg {
namespace {

// Rebuilds `owner`'s secret from the first t of `shares`, caching Lagrange coefficients per
// set of holders (in the complete graph every secret has the same holders).
class Reconstructor {
 public:
  explicit Reconstructor(int threshold) : t_(threshold) {}
  absl::StatusOr<Secret32> Rebuild(uint32_t owner, const char* what,
                                   const std::vector<const ShamirShare*>& shares) {
    if (shares.size() < static_cast<size_t>(t_)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "secagg: only ", shares.size(), " shares of device ", owner, "'s ", what,
          " arrived, threshold ", t_,
          " (hint: too many dropouts during unmasking; round aborted, nothing revealed)"));
    }
    std::vector<const ShamirShare*> used(shares.begin(), shares.begin() + t_);
    std::vector<uint64_t> xs;
    xs.reserve(t_);
    for (const auto* s : used) xs.push_back(s->x);
    auto it = cache_.find(xs);
    if (it == cache_.end()) it = cache_.emplace(xs, LagrangeAtZero(xs)).first;
    return ShamirCombine(used, it->second);
  }

 private:
  int t_;
  std::map<std::vector<uint64_t>, std::vector<uint64_t>> cache_;
};

}  // namespace

absl::Status ServerR3UnmaskingState::Handle(uint32_t u, const proto::SecAggDeviceMessage& message) {
  if (!message.has_unmasking()) return ServerState::Handle(u, message);
  ServerDeviceRecord& rec = ctx_->devices[u];
  if (!rec.in_u3) {
    return Reject(u, DropReason::kUnexpectedMessage,
                  absl::FailedPreconditionError(absl::StrCat(
                      "secagg: device ", u,
                      " sent unmasking shares without a masked input (device dropped)")));
  }
  if (rec.unmasked) {
    return Reject(u, DropReason::kDuplicateMessage,
                  absl::FailedPreconditionError(absl::StrCat(
                      "secagg: device ", u, " sent unmasking shares twice (device dropped)")));
  }
  // The owners must be exactly what was asked: survivors + self, and dropped neighbours.
  std::set<uint32_t> want_self = {u}, want_key;
  for (uint32_t v : ctx_->Neighbours(u)) {
    if (ctx_->devices[v].in_u3)
      want_self.insert(v);
    else if (ctx_->devices[v].in_u2)
      want_key.insert(v);
  }
  auto parse = [&](const auto& list, const std::set<uint32_t>& want,
                   std::vector<std::pair<uint32_t, ShamirShare>>* out) -> absl::Status {
    std::set<uint32_t> got;
    for (const auto& s : list) {
      if (!want.count(s.owner()) || !got.insert(s.owner()).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("unrequested or repeated share owner ", s.owner()));
      }
      auto share = ParseShare(uint64_t{u} + 1, s.share());
      if (!share.ok()) return share.status();
      out->emplace_back(s.owner(), std::move(share).value());
    }
    if (got.size() != want.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(got.size(), " shares where ", want.size(), " were requested"));
    }
    return absl::OkStatus();
  };
  std::vector<std::pair<uint32_t, ShamirShare>> self_shares, key_shares;
  absl::Status st = parse(message.unmasking().self_mask_shares(), want_self, &self_shares);
  if (st.ok()) st = parse(message.unmasking().pairwise_key_shares(), want_key, &key_shares);
  if (!st.ok()) {
    return Reject(u, DropReason::kMalformedMessage,
                  absl::InvalidArgumentError(absl::StrCat(
                      "secagg: device ", u, " sent bad unmasking shares: ", st.message(),
                      " (device dropped)")));
  }
  rec.unmasked = true;
  rec.self_shares = std::move(self_shares);
  rec.key_shares = std::move(key_shares);
  return absl::OkStatus();
}

int ServerR3UnmaskingState::NumPending() const {
  return CountPending(&ServerDeviceRecord::unmasked, &ServerDeviceRecord::in_u3);
}

absl::StatusOr<std::unique_ptr<ServerState>> ServerR3UnmaskingState::Proceed() {
  DropSilent(&ServerDeviceRecord::unmasked, &ServerDeviceRecord::in_u3);
  const size_t n = ctx_->devices.size();
  const int t = static_cast<int>(ctx_->config.threshold());
  // Gather shares per owner from responders (ascending id, so holder sets repeat).
  std::vector<std::vector<const ShamirShare*>> self_by_owner(n), key_by_owner(n);
  for (uint32_t r = 0; r < n; ++r) {
    const auto& rec = ctx_->devices[r];
    if (!rec.unmasked || rec.dropped) continue;
    for (const auto& [owner, share] : rec.self_shares) self_by_owner[owner].push_back(&share);
    for (const auto& [owner, share] : rec.key_shares) key_by_owner[owner].push_back(&share);
  }
  Reconstructor rebuild(t);
  MaskExpander prg;
  std::vector<uint32_t>& sum = ctx_->sum;
  std::vector<uint32_t> included;
  for (uint32_t o = 0; o < n; ++o) {
    if (!ctx_->devices[o].in_u3) continue;
    included.push_back(o);
    auto seed = rebuild.Rebuild(o, "self-mask seed", self_by_owner[o]);
    if (!seed.ok()) return Abort(seed.status());
    prg.Apply(*seed, /*subtract=*/true, sum.data(), sum.size());
  }
  for (uint32_t o = 0; o < n; ++o) {
    const auto& rec = ctx_->devices[o];
    if (!rec.in_u2 || rec.in_u3) continue;
    std::vector<uint32_t> live;
    for (uint32_t w : ctx_->Neighbours(o)) {
      if (ctx_->devices[w].in_u3) live.push_back(w);
    }
    if (live.empty()) continue;
    auto sk = rebuild.Rebuild(o, "masking key", key_by_owner[o]);
    if (!sk.ok()) return Abort(sk.status());
    auto key = X25519KeyPair::FromPrivateKey(*sk);
    if (!key.ok() || !ConstantTimeEquals(key->public_key(), rec.mask_pk)) {
      return Abort(absl::DataLossError(
          absl::StrCat("secagg: rebuilt masking key of device ", o,
                       " does not match its advertised key (hint: forged shares; round aborted)")));
    }
    for (uint32_t w : live) {
      auto dh = key->Agree(ctx_->devices[w].mask_pk);
      if (!dh.ok()) return Abort(dh.status());
      const Secret32 seed = PairwiseMaskSeed(*dh, ctx_->session_id, o, w);
      // w added this mask iff w < o; take it back out.
      prg.Apply(seed, /*subtract=*/AddsPairwiseMask(w, o), sum.data(), sum.size());
    }
  }
  const uint32_t bits = ctx_->config.bits();
  if (bits < 32) {
    const uint32_t mask = (uint32_t{1} << bits) - 1;
    for (auto& v : sum) v &= mask;
  }
  for (auto& rec : ctx_->devices) {
    rec.self_shares.clear();
    rec.key_shares.clear();
  }
  return std::unique_ptr<ServerState>(
      new ServerCompletedState(ctx_, std::move(sum), std::move(included)));
}

}  // namespace fedlora::secagg
