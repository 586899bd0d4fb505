#include "fedlora/privacy/prepare_update.h"

#include <cmath>

#include "absl/strings/str_format.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/privacy/clipping.h"

namespace fedlora::privacy {

const char* DpModeName(DpMode mode) {
  switch (mode) {
    case DpMode::kNone:
      return "none";
    case DpMode::kCentral:
      return "central";
    case DpMode::kDistributed:
      return "distributed";
  }
  return "unknown";
}

absl::Status ValidateRoundPrivacyParams(const RoundPrivacyParams& p) {
  if (p.dim == 0) return absl::InvalidArgumentError("privacy: round parameters: dim must be > 0");
  if (p.mode == DpMode::kNone) return absl::OkStatus();
  if (!(p.clip > 0) || !std::isfinite(p.clip)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: round parameters: clip must be > 0, got %g", p.clip));
  }
  if (p.mode == DpMode::kCentral) return absl::OkStatus();
  if (p.value.dim != p.dim) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: round parameters: value.dim %d != dim %d", p.value.dim, p.dim));
  }
  if (p.value.l2_clip != p.clip) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: round parameters: value.l2_clip %g != clip %g", p.value.l2_clip, p.clip));
  }
  if (p.send_clip_bit != p.count.has_value()) {
    return absl::InvalidArgumentError(
        "privacy: round parameters: count parameters must be present exactly when the clip "
        "bit is sent");
  }
  if (p.count && p.count->bits != p.value.bits) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: round parameters: count bits %d != value bits %d", p.count->bits, p.value.bits));
  }
  return absl::OkStatus();
}

absl::StatusOr<PreparedUpdate> PrepareUpdate(const float* delta, size_t n,
                                             const RoundPrivacyParams& params, RandomSource& rng,
                                             const PrepareOptions& options) {
  FEDLORA_RETURN_IF_ERROR(ValidateRoundPrivacyParams(params));
  if (n != params.dim) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: update has %d entries, the round's adapter %d (hint: the device trained a "
        "different adapter layout; download the round's adapter again)",
        n, params.dim));
  }
  FEDLORA_RETURN_IF_ERROR(CheckFinite(delta, n));
  if (params.mode != DpMode::kNone && !rng.secure() && !options.allow_seeded_noise) {
    return absl::FailedPreconditionError(
        "privacy: DP noise must come from a cryptographically secure generator "
        "(SecureRandom); a seeded generator is for simulations and tests only");
  }
  PreparedUpdate out;
  out.norm = L2Norm(delta, n);
  switch (params.mode) {
    case DpMode::kNone:
      out.clipped_delta.assign(delta, delta + n);
      return out;
    case DpMode::kCentral: {
      out.clipped_delta.assign(delta, delta + n);
      FEDLORA_ASSIGN_OR_RETURN(ClipResult cr, ClipL2InPlace(out.clipped_delta, params.clip));
      out.clipped = cr.clipped;
      out.clip_bit = AdaptiveClipper::ClipBit(cr.norm, params.clip);
      return out;
    }
    case DpMode::kDistributed: {
      FEDLORA_ASSIGN_OR_RETURN(DdgCodec codec, DdgCodec::Create(params.value));
      FEDLORA_ASSIGN_OR_RETURN(
          DdgEncodeStats st, codec.Encode(delta, n, params.rotation_seed, rng, &out.secagg_input));
      out.clipped = st.clipped;
      if (params.send_clip_bit) {
        FEDLORA_ASSIGN_OR_RETURN(
            uint32_t c,
            EncodeCount(AdaptiveClipper::ClipBit(st.norm, params.clip), *params.count, rng));
        out.secagg_input.push_back(c);
      }
      return out;
    }
  }
  return absl::InternalError("privacy: unknown DP mode");
}

}  // namespace fedlora::privacy
