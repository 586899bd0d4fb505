#include "server_r3_unmasking_state.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "derivations.h"
#include "fedlora/secagg/key_agreement.h"
#include "fedlora/secagg/mask_prg.h"
#include "parallel.h"

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
  // Rebuild every needed secret first (cheap), then expand the masks in parallel.
  Reconstructor rebuild(t);
  std::vector<uint32_t> included;
  std::vector<Secret32> self_seeds;
  for (uint32_t o = 0; o < n; ++o) {
    if (!ctx_->devices[o].in_u3) continue;
    included.push_back(o);
    auto seed = rebuild.Rebuild(o, "self-mask seed", self_by_owner[o]);
    if (!seed.ok()) return Abort(seed.status());
    self_seeds.push_back(*seed);
  }
  struct DroppedOwner {
    uint32_t id;
    X25519KeyPair key;
    std::vector<uint32_t> live;  // neighbours in U3
  };
  std::vector<DroppedOwner> dropped;
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
    dropped.push_back(DroppedOwner{o, std::move(key).value(), std::move(live)});
  }
  // Task i < self_seeds.size(): remove a self mask; otherwise the pairwise masks of one
  // dropped device. Each worker accumulates into its own buffer.
  const int threads = ctx_->threads;
  const size_t dim = ctx_->sum.size();
  std::vector<std::vector<uint32_t>> partial(threads);
  std::vector<MaskExpander> prgs(threads);
  std::vector<absl::Status> errors(threads);
  ParallelFor(self_seeds.size() + dropped.size(), threads, [&](size_t i, int w) {
    std::vector<uint32_t>& acc = w == 0 ? ctx_->sum : partial[w];
    if (acc.empty()) acc.assign(dim, 0);
    if (i < self_seeds.size()) {
      prgs[w].Apply(self_seeds[i], /*subtract=*/true, acc.data(), dim);
      return;
    }
    const DroppedOwner& d = dropped[i - self_seeds.size()];
    for (uint32_t v : d.live) {
      auto dh = d.key.Agree(ctx_->devices[v].mask_pk);
      if (!dh.ok()) {
        errors[w] = dh.status();
        return;
      }
      const Secret32 seed = PairwiseMaskSeed(*dh, ctx_->session_id, d.id, v);
      // v added this mask iff v < d.id; take it back out.
      prgs[w].Apply(seed, /*subtract=*/AddsPairwiseMask(v, d.id), acc.data(), dim);
    }
  });
  for (const auto& e : errors) {
    if (!e.ok()) return Abort(e);
  }
  std::vector<uint32_t>& sum = ctx_->sum;
  for (int w = 1; w < threads; ++w) {
    if (partial[w].empty()) continue;
    for (size_t i = 0; i < dim; ++i) sum[i] += partial[w][i];
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
