#include "server_r2_masked_input_state.h"

#include "absl/strings/str_cat.h"
#include "fedlora/secagg/bit_packing.h"
#include "server_r3_unmasking_state.h"

namespace fedlora::secagg {

absl::Status ServerR2MaskedInputState::Handle(uint32_t u,
                                              const proto::SecAggDeviceMessage& message) {
  if (!message.has_masked_input()) return ServerState::Handle(u, message);
  ServerDeviceRecord& rec = ctx_->devices[u];
  if (!rec.in_u2) {
    return Reject(u, DropReason::kUnexpectedMessage,
                  absl::FailedPreconditionError(absl::StrCat(
                      "secagg: device ", u,
                      " sent a masked input without having shared keys (device dropped)")));
  }
  if (rec.masked) {
    return Reject(u, DropReason::kDuplicateMessage,
                  absl::FailedPreconditionError(absl::StrCat(
                      "secagg: device ", u, " sent its masked input twice (device dropped)")));
  }
  const auto& in = message.masked_input();
  const auto& cfg = ctx_->config;
  if (in.dim() != cfg.dim() || in.bits() != cfg.bits() ||
      in.packed().size() != PackedSize(cfg.dim(), static_cast<int>(cfg.bits()))) {
    return Reject(
        u, DropReason::kWrongVectorLength,
        absl::InvalidArgumentError(absl::StrCat(
            "secagg: device ", u, " sent a masked input of dim ", in.dim(), " x ", in.bits(),
            " bits in ", in.packed().size(), " bytes, expected dim ", cfg.dim(), " x ", cfg.bits(),
            " bits in ", PackedSize(cfg.dim(), static_cast<int>(cfg.bits())),
            " bytes (device dropped)")));
  }
  rec.masked = true;
  rec.packed_input = in.packed();
  return absl::OkStatus();
}

int ServerR2MaskedInputState::NumPending() const {
  return CountPending(&ServerDeviceRecord::masked, &ServerDeviceRecord::in_u2);
}

absl::StatusOr<std::unique_ptr<ServerState>> ServerR2MaskedInputState::Proceed() {
  DropSilent(&ServerDeviceRecord::masked, &ServerDeviceRecord::in_u2);
  const uint32_t t = ctx_->config.threshold();
  const size_t n = ctx_->devices.size();
  auto in_u3 = [&](uint32_t v) { return ctx_->devices[v].masked && !ctx_->devices[v].dropped; };
  uint32_t count = 0;
  for (uint32_t u = 0; u < n; ++u) {
    ctx_->devices[u].in_u3 = in_u3(u);
    count += in_u3(u);
  }
  if (count < t) {
    return Abort(absl::FailedPreconditionError(
        absl::StrCat("secagg: only ", count, " masked inputs arrived, threshold ", t,
                     " (hint: too many dropouts; round aborted, no mask was revealed)")));
  }
  const uint32_t m = ctx_->config.min_sum_devices();
  if (count < m) {
    return Abort(absl::FailedPreconditionError(absl::StrCat(
        "secagg: ", count, " survivors < min_clients ", m,
        ": the noise would be too small (round aborted before unmasking, nothing released)")));
  }
  ctx_->sum.assign(ctx_->config.dim(), 0);
  for (uint32_t u = 0; u < n; ++u) {
    std::string packed = std::move(ctx_->devices[u].packed_input);
    ctx_->devices[u].packed_input.clear();
    if (!in_u3(u)) continue;
    // Sizes were checked on receipt, so this cannot fail.
    (void)UnpackAndAdd(packed, static_cast<int>(ctx_->config.bits()), ctx_->sum.data(),
                       ctx_->sum.size());
  }
  for (uint32_t u = 0; u < n; ++u) {
    if (!in_u3(u)) continue;
    proto::SecAggServerMessage msg;
    auto* req = msg.mutable_unmasking_request();
    for (uint32_t v : ctx_->Neighbours(u)) {
      const auto& rv = ctx_->devices[v];
      if (rv.in_u3) {
        req->add_survivors(v);
      } else if (rv.in_u2) {  // shared keys, then dropped: its pairwise masks must go
        req->add_dropped(v);
      }
    }
    ctx_->Send(u, msg);
  }
  return std::unique_ptr<ServerState>(new ServerR3UnmaskingState(ctx_));
}

}  // namespace fedlora::secagg
