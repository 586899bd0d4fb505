#include "fedlora/privacy/params_wire.h"

#include <cmath>

#include "absl/status/status.h"
#include "fedlora/common/status_macros.h"

namespace fedlora::privacy {

v1::PrivacyParams ParamsToProto(const RoundPrivacyParams& p) {
  v1::PrivacyParams m;
  switch (p.mode) {
    case DpMode::kNone: m.set_mode(v1::PrivacyParams::MODE_NONE); break;
    case DpMode::kCentral: m.set_mode(v1::PrivacyParams::MODE_CENTRAL); break;
    case DpMode::kDistributed: m.set_mode(v1::PrivacyParams::MODE_DISTRIBUTED); break;
  }
  m.set_dim(p.dim);
  m.set_clip(p.clip);
  m.set_send_clip_bit(p.send_clip_bit);
  m.set_rotation_seed(p.rotation_seed);
  m.set_expected_clients(p.value.expected_clients);
  m.set_min_clients(p.value.min_clients);
  m.set_noise_multiplier(p.value.noise_multiplier);
  m.set_bits(p.value.bits);
  m.set_modclip_prob(p.value.modclip_prob);
  m.set_beta(p.value.beta);
  m.set_max_scale(p.value.max_scale);
  if (p.count) {
    m.set_count_scale(p.count->scale);
    m.set_count_local_sigma2(p.count->local_sigma2);
    m.set_count_stddev(p.count->count_stddev);
    m.set_count_min_clients(p.count->min_clients);
    m.set_count_expected_clients(p.count->expected_clients);
    m.set_count_bits(p.count->bits);
  }
  return m;
}

absl::StatusOr<RoundPrivacyParams> ParamsFromProto(const v1::PrivacyParams& m) {
  RoundPrivacyParams p;
  switch (m.mode()) {
    case v1::PrivacyParams::MODE_NONE: p.mode = DpMode::kNone; break;
    case v1::PrivacyParams::MODE_CENTRAL: p.mode = DpMode::kCentral; break;
    case v1::PrivacyParams::MODE_DISTRIBUTED: p.mode = DpMode::kDistributed; break;
    default:
      return absl::InvalidArgumentError("privacy params: mode unspecified (hint: coordinator "
                                        "and device speak different protocol versions)");
  }
  for (double v : {m.clip(), m.noise_multiplier(), m.modclip_prob(), m.beta(), m.max_scale(),
                   m.count_local_sigma2(), m.count_stddev()}) {
    if (!std::isfinite(v)) return absl::InvalidArgumentError("privacy params: non-finite field");
  }
  p.dim = m.dim();
  p.clip = m.clip();
  p.send_clip_bit = m.send_clip_bit();
  p.rotation_seed = m.rotation_seed();
  if (p.mode == DpMode::kDistributed) {
    p.value.dim = m.dim();
    p.value.l2_clip = m.clip();
    p.value.expected_clients = m.expected_clients();
    p.value.min_clients = m.min_clients();
    p.value.noise_multiplier = m.noise_multiplier();
    p.value.bits = m.bits();
    p.value.modclip_prob = m.modclip_prob();
    p.value.beta = m.beta();
    p.value.max_scale = m.max_scale();
    if (m.send_clip_bit()) {
      CountDdgParams c;
      c.scale = m.count_scale();
      c.local_sigma2 = m.count_local_sigma2();
      c.count_stddev = m.count_stddev();
      c.min_clients = m.count_min_clients();
      c.expected_clients = m.count_expected_clients();
      c.bits = m.count_bits();
      p.count = c;
    }
  }
  FEDLORA_RETURN_IF_ERROR(ValidateRoundPrivacyParams(p));
  return p;
}

}  // namespace fedlora::privacy
