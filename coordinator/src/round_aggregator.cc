#include "fedlora/coordinator/round_aggregator.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/privacy/ddg_codec.h"
#include "fedlora/privacy/ddg_count.h"
#include "fedlora/privacy/gaussian_noise.h"

namespace fedlora::coordinator {

using privacy::DpMode;

absl::StatusOr<RoundAggregator> RoundAggregator::Create(const PrivacyRecipe& recipe) {
  FEDLORA_RETURN_IF_ERROR(ValidateRecipe(recipe));
  RoundAggregator a(recipe);
  a.value_noise_ = recipe.mode == DpMode::kNone ? 0.0 : recipe.noise_multiplier;
  if (recipe.adaptive_clip) {
    privacy::AdaptiveClipConfig cc;
    cc.initial_clip = recipe.clip;
    cc.target_quantile = recipe.target_quantile;
    cc.learning_rate = recipe.clip_lr;
    cc.expected_clients = recipe.expected_cohort;
    if (recipe.mode != DpMode::kNone) {
      auto split =
          privacy::AdaptiveClipNoiseParams(recipe.noise_multiplier, recipe.expected_cohort);
      if (!split.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "privacy.noise_multiplier / privacy.clip_mode: ", split.status().message()));
      }
      a.value_noise_ = split->value_noise_multiplier;
      a.count_stddev_ = split->clipped_count_stddev;
      // Central: the trusted aggregator adds the count's noise. Distributed: the devices do.
      if (recipe.mode == DpMode::kCentral) cc.clipped_count_stddev = a.count_stddev_;
    }
    FEDLORA_ASSIGN_OR_RETURN(auto clipper, privacy::AdaptiveClipper::Create(cc));
    a.clipper_ = std::move(clipper);
  }
  if (recipe.mode == DpMode::kDistributed) {
    auto p = a.NextRoundParams(0);
    if (!p.ok()) {
      return absl::Status(
          p.status().code(),
          absl::StrCat("privacy.bits / privacy.noise_multiplier: ", p.status().message()));
    }
  }
  return a;
}

double RoundAggregator::clip() const { return clipper_ ? clipper_->clip() : recipe_.clip; }

absl::Status RoundAggregator::RestoreClip(double c) {
  return clipper_ ? clipper_->RestoreClip(c) : absl::OkStatus();
}

privacy::DdgConfig RoundAggregator::ValueConfig(double clip) const {
  privacy::DdgConfig d;
  d.dim = recipe_.dim;
  d.expected_clients = MaxCohort(recipe_);  // bit headroom for the largest cohort summed
  d.min_clients = shard_min_clients();  // each unmasked sum (a shard's) carries the full noise
  d.l2_clip = clip;
  d.noise_multiplier = value_noise_;
  d.bits = recipe_.bits;
  d.modclip_prob = recipe_.modclip_prob;
  return d;
}

absl::StatusOr<privacy::RoundPrivacyParams> RoundAggregator::NextRoundParams(
    uint64_t rotation_seed) const {
  privacy::RoundPrivacyParams p;
  p.mode = recipe_.mode;
  p.dim = recipe_.dim;
  p.clip = recipe_.mode == DpMode::kNone ? 0.0 : clip();
  p.send_clip_bit = recipe_.adaptive_clip && recipe_.mode != DpMode::kNone;
  if (recipe_.mode == DpMode::kDistributed) {
    p.value = ValueConfig(p.clip);
    FEDLORA_RETURN_IF_ERROR(privacy::ChooseDdgParams(p.value).status());
    p.rotation_seed = rotation_seed;
    if (p.send_clip_bit) {
      FEDLORA_ASSIGN_OR_RETURN(privacy::CountDdgParams c,
                               privacy::ChooseCountDdgParams(count_stddev_, MaxCohort(recipe_),
                                                             shard_min_clients(), recipe_.bits));
      p.count = c;
    }
  }
  FEDLORA_RETURN_IF_ERROR(privacy::ValidateRoundPrivacyParams(p));
  return p;
}

absl::StatusOr<privacy::RoundMechanism> RoundAggregator::Mechanism(
    const privacy::RoundPrivacyParams& params) const {
  privacy::RoundMechanism m;
  m.sampling = recipe_.sampling;
  m.q = SamplingRate(recipe_);
  if (params.mode == DpMode::kCentral) {
    m.gaussian_noise_multiplier = recipe_.noise_multiplier;  // value and count composed
  } else if (params.mode == DpMode::kDistributed) {
    FEDLORA_ASSIGN_OR_RETURN(privacy::DdgParams ddg, privacy::ChooseDdgParams(params.value));
    m.ddg.push_back(privacy::DdgValueMechanism(ddg));
    if (params.count) m.ddg.push_back(privacy::CountMechanism(*params.count));
  } else {
    return absl::FailedPreconditionError("privacy: no DP: nothing to account");
  }
  return m;
}

absl::StatusOr<secagg::SessionParams> RoundAggregator::SessionFor(
    const privacy::RoundPrivacyParams& params, uint32_t num_devices) const {
  if (params.mode != DpMode::kDistributed) {
    return absl::FailedPreconditionError("secure aggregation runs in distributed mode only");
  }
  FEDLORA_ASSIGN_OR_RETURN(privacy::DdgParams ddg, privacy::ChooseDdgParams(params.value));
  secagg::SessionParams s;
  s.num_devices = num_devices;
  s.dim = ddg.padded_dim + (params.count ? 1 : 0);
  s.bits = recipe_.bits;
  s.min_sum_devices = static_cast<uint32_t>(shard_min_clients());
  return s;
}

double DecodedNormBound(const privacy::DdgParams& p, int num_summed) {
  const double n = std::max(num_summed, 0);
  const double dim = static_cast<double>(p.padded_dim);
  const double x = std::log(1 / kNormBoundTailProbability);
  const double noise_var = p.local_sigma2_scaled > 0 ? n * p.local_sigma2_scaled : 0.0;
  const double noise = std::sqrt(noise_var * (dim + 2 * std::sqrt(dim * x) + 2 * x));
  return p.gamma * (n * p.scaled_l2_bound + noise);
}

double RoundAggregator::Denominator(int num_summed) const {
  // Poisson: the realized cohort size is private; divide by the public expected cohort.
  if (recipe_.sampling == privacy::Sampling::kPoisson) return recipe_.expected_cohort;
  return std::max(num_summed, 1);
}

absl::StatusOr<AggregateResult> RoundAggregator::FinishDistributed(
    const privacy::RoundPrivacyParams& params, const std::vector<uint32_t>& sum, int num_summed) {
  if (params.mode != DpMode::kDistributed) {
    return absl::FailedPreconditionError("FinishDistributed: the round is not distributed");
  }
  if (num_summed < min_clients()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%d survivors < min_clients %d: the noise would be too small (round aborted, nothing "
        "released)",
        num_summed, min_clients()));
  }
  FEDLORA_ASSIGN_OR_RETURN(privacy::DdgCodec codec, privacy::DdgCodec::Create(params.value));
  const size_t padded = codec.params().padded_dim;
  const size_t want = padded + (params.count ? 1 : 0);
  if (sum.size() != want) {
    return absl::InvalidArgumentError(
        absl::StrFormat("secure-aggregation sum has %d entries, expected %d", sum.size(), want));
  }
  FEDLORA_ASSIGN_OR_RETURN(std::vector<float> total, codec.Decode(sum, params.rotation_seed));
  AggregateResult r;
  r.summed = num_summed;
  r.clip_used = params.clip;
  // A device's masked input can be any vector mod 2^b: refuse a sum larger than honest
  // devices can produce (nothing is updated; the caller aborts the round and charges it).
  // The message names no count and no norm (both would reveal the private number summed).
  if (privacy::L2Norm(total.data(), total.size()) > DecodedNormBound(codec.params(), num_summed)) {
    r.rejected = absl::StrFormat(
        "the decoded sum's L2 norm exceeds what the summed devices' clip and the noise allow "
        "(tail probability %g): a device sent an input outside its clip (hint: find it with the "
        "drop and revocation records; the round is charged, nothing applied)",
        kNormBoundTailProbability);
    r.next_clip = clip();
    return r;
  }
  const double denom = Denominator(num_summed);
  r.mean_delta.resize(total.size());
  for (size_t j = 0; j < total.size(); ++j) r.mean_delta[j] = static_cast<float>(total[j] / denom);
  if (params.count && clipper_) {
    const double centered = privacy::DecodeCount(sum[padded], *params.count);
    r.noisy_unclipped_fraction = std::clamp(centered / recipe_.expected_cohort + 0.5, 0.0, 1.0);
    FEDLORA_RETURN_IF_ERROR(clipper_->UpdateFromNoisySum(centered).status());
  }
  r.next_clip = clip();
  return r;
}

absl::StatusOr<AggregateResult> RoundAggregator::FinishCentral(
    const privacy::RoundPrivacyParams& params,
    const std::vector<const privacy::PreparedUpdate*>& updates, RandomSource& rng) {
  if (params.mode == DpMode::kDistributed) {
    return absl::FailedPreconditionError("FinishCentral: the round is distributed");
  }
  if (updates.empty()) return absl::FailedPreconditionError("no device reported");
  AggregateResult r;
  r.summed = static_cast<int>(updates.size());
  r.clip_used = params.clip;
  r.mean_delta.assign(recipe_.dim, 0.0f);
  if (params.mode == DpMode::kNone) {
    for (const auto* u : updates) {
      FEDLORA_RETURN_IF_ERROR(
          privacy::CheckFinite(u->clipped_delta.data(), u->clipped_delta.size()));
      if (u->clipped_delta.size() != recipe_.dim) {
        return absl::InvalidArgumentError("an update has the wrong length");
      }
      for (size_t j = 0; j < recipe_.dim; ++j) r.mean_delta[j] += u->clipped_delta[j];
    }
    for (auto& v : r.mean_delta) v /= static_cast<float>(Denominator(r.summed));
    r.next_clip = clip();
    return r;
  }
  FEDLORA_ASSIGN_OR_RETURN(
      auto agg, privacy::CentralDpAggregator::Create(recipe_.dim, params.clip, value_noise_));
  uint64_t below = 0;
  for (const auto* u : updates) {
    FEDLORA_ASSIGN_OR_RETURN(auto cr, agg.Add(u->clipped_delta));
    (void)cr;
    below += u->clip_bit & 1u;  // the device's bit: norm before clipping <= C
  }
  std::vector<float> sum = agg.Release(rng);
  const double denom = Denominator(r.summed);
  for (size_t j = 0; j < recipe_.dim; ++j) r.mean_delta[j] = static_cast<float>(sum[j] / denom);
  if (clipper_) FEDLORA_RETURN_IF_ERROR(clipper_->Update(below, updates.size(), rng).status());
  r.next_clip = clip();
  return r;
}

}  // namespace fedlora::coordinator
