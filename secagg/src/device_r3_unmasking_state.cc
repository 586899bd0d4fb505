#include "device_r3_unmasking_state.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/secagg/secret.h"

namespace fedlora::secagg {

HeldShares::~HeldShares() {
  CleanseString(key_share);
  CleanseString(self_share);
}

DeviceR3UnmaskingState::~DeviceR3UnmaskingState() { CleanseString(own_self_share_); }

absl::StatusOr<std::unique_ptr<DeviceState>> DeviceR3UnmaskingState::HandleMessage(
    const proto::SecAggServerMessage& message) {
  if (!message.has_unmasking_request()) return DeviceState::HandleMessage(message);
  FEDLORA_RETURN_IF_ERROR(CheckSessionId(message));
  const uint32_t me = ctx_->id;
  const auto& req = message.unmasking_request();

  // Check the whole request before revealing anything.
  std::set<uint32_t> survivors, dropped;
  for (uint32_t v : req.survivors()) {
    if (v == me || !held_.count(v) || !survivors.insert(v).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("secagg: device ", me, " refuses to unmask: survivor ", v,
                       " is itself, repeated, or a device it holds no shares of (device aborts)"));
    }
  }
  for (uint32_t v : req.dropped()) {
    if (survivors.count(v) || v == me) {
      return absl::PermissionDeniedError(
          absl::StrCat("secagg: device ", me,
                       " refuses to unmask: the server asked for both the self-mask "
                       "share and the masking-key share of device ",
                       v, " (hint: malicious or faulty server; device aborts)"));
    }
    if (!held_.count(v) || !dropped.insert(v).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("secagg: device ", me, " refuses to unmask: dropped device ", v,
                       " is repeated or a device it holds no shares of (device aborts)"));
    }
  }
  const uint32_t t = ctx_->config.threshold();
  if (survivors.size() + 1 < t) {
    return absl::FailedPreconditionError(
        absl::StrCat("secagg: device ", me, " refuses to unmask: only ", survivors.size(),
                     " neighbours survived, threshold ", t,
                     " (hint: the sum would cover too few inputs; device aborts)"));
  }
  // In a complete graph a device sees every survivor: it refuses to help unmask a sum whose
  // noise would fall short of what its own share was calibrated for.
  const uint32_t m = ctx_->config.min_sum_devices();
  if (ctx_->config.graph() == proto::SECAGG_GRAPH_COMPLETE && survivors.size() + 1 < m) {
    return absl::FailedPreconditionError(absl::StrCat(
        "secagg: device ", me, " refuses to unmask: ", survivors.size() + 1,
        " survivors < min_clients ", m, " (the noise would be too small; device aborts)"));
  }

  proto::SecAggDeviceMessage out;
  auto* resp = out.mutable_unmasking();
  for (uint32_t v : survivors) {
    auto* s = resp->add_self_mask_shares();
    s->set_owner(v);
    s->set_share(held_.at(v).self_share);
  }
  auto* own = resp->add_self_mask_shares();
  own->set_owner(me);
  own->set_share(own_self_share_);
  for (uint32_t v : dropped) {
    auto* s = resp->add_pairwise_key_shares();
    s->set_owner(v);
    s->set_share(held_.at(v).key_share);
  }
  held_.clear();
  ctx_->Send(out);
  return std::unique_ptr<DeviceState>(new DeviceCompletedState(ctx_));
}

}  // namespace fedlora::secagg
