// The coordinator's half of the privacy path, transport-free: the clip (fixed or adaptive)
// across rounds, the parameters published to devices for a round, the secure-aggregation
// session they run, and the decoding of what comes back into a mean delta.
//
//   distributed: devices run privacy::PrepareUpdate; secure aggregation (secagg::SecAggServer,
//                which refuses to unmask fewer than MinClients inputs) yields the mod-2^b sum;
//                FinishDistributed decodes it. The server never sees one device's update, nor
//                the exact clipped count.
//   central:     a trusted aggregator: FinishCentral sums the clipped updates and adds the
//                Gaussian noise itself (and the count's, with adaptive clipping).
//   none:        a plain mean (research baseline).
// The mean divides by the number of devices summed under fixed-size cohorts and by the
// expected cohort (a public constant) under Poisson sampling.
#ifndef FEDLORA_COORDINATOR_ROUND_AGGREGATOR_H_
#define FEDLORA_COORDINATOR_ROUND_AGGREGATOR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/common/random.h"
#include "fedlora/coordinator/privacy_recipe.h"
#include "fedlora/privacy/clipping.h"
#include "fedlora/privacy/ddg_codec.h"
#include "fedlora/privacy/prepare_update.h"
#include "fedlora/privacy/round_accounting.h"
#include "fedlora/secagg/session_config.h"

namespace fedlora::coordinator {

struct AggregateResult {
  std::vector<float> mean_delta;  // estimate of the mean clipped delta
  int summed = 0;                 // devices whose updates are in it
  double clip_used = 0;
  double next_clip = 0;
  // Adaptive clipping: the noisy estimate of the fraction of devices not clipped.
  std::optional<double> noisy_unclipped_fraction;
  // Non-empty when the decoded sum failed the norm bound (DecodedNormBound): why, without
  // counts. Then mean_delta is empty and the clip is unchanged; the round must be aborted and
  // charged (the decision was made on the noisy sum).
  std::string rejected;
};

// The tail probability of DecodedNormBound: an honest round fails the check with at most this
// probability.
inline constexpr double kNormBoundTailProbability = 1e-9;

// The largest L2 norm the decoded sum of `num_summed` honest devices' inputs reaches, except
// with probability kNormBoundTailProbability, with x = ln(1 / that probability):
//   gamma * (n * scaled_l2_bound + sqrt(n * sigma2 * (D + 2 sqrt(D x) + 2 x)))
// where D = padded_dim, sigma2 = local_sigma2_scaled, gamma = 1 / scale. The first term is
// hard: conditional rounding keeps each device's scaled, rotated, clipped and rounded vector
// within scaled_l2_bound (the clip C inflated by rounding). The second bounds the norm of the
// sum of n D discrete Gaussians (each sigma2-sub-Gaussian, Canonne-Kamath-Steinke 2020): the
// squared norm over n sigma2 is dominated by a chi-square with D degrees of freedom in its
// moment generating function, so the Laurent-Massart bound applies. The rotation is
// orthonormal and a modular wrap only shrinks a coordinate, so the decoded d entries obey it.
double DecodedNormBound(const privacy::DdgParams& params, int num_summed);

class RoundAggregator {
 public:
  // Validates the recipe, the adaptive-clipping noise split and that the DDG parameters fit in
  // 2^bits. INVALID_ARGUMENT / OUT_OF_RANGE naming the field.
  static absl::StatusOr<RoundAggregator> Create(const PrivacyRecipe& recipe);

  const PrivacyRecipe& recipe() const { return recipe_; }
  double clip() const;
  // After a coordinator restart: the adaptive clip reached so far (ignored with a fixed clip).
  absl::Status RestoreClip(double clip);
  // Noise multiplier on the values (the whole z unless adaptive clipping takes its share).
  double value_noise_multiplier() const { return value_noise_; }
  // Devices a round must sum (its survivors over all shards): fewer are never released.
  int min_clients() const { return MinClients(recipe_); }
  // Devices each unmasked sum must hold, which the noise is calibrated for: min_clients()
  // without sharding, a shard's minimum with it (ShardMinClients).
  int shard_min_clients() const { return ShardMinClients(recipe_); }

  // What devices need for the next round; `rotation_seed` is fresh per round (the coordinator
  // draws it from its secure generator).
  absl::StatusOr<privacy::RoundPrivacyParams> NextRoundParams(uint64_t rotation_seed) const;
  // The accounting view of a round run with `params`.
  absl::StatusOr<privacy::RoundMechanism> Mechanism(
      const privacy::RoundPrivacyParams& params) const;
  // The secure-aggregation session for `num_devices` reporting devices (distributed mode): one
  // round's, or one shard's (shard_plan.h): vector length, bits, and min_sum_devices =
  // shard_min_clients().
  absl::StatusOr<secagg::SessionParams> SessionFor(const privacy::RoundPrivacyParams& params,
                                                   uint32_t num_devices) const;

  // Distributed mode: `sum` is the unmasked mod-2^b sum of `num_summed` devices' inputs.
  // FAILED_PRECONDITION (nothing changes) if num_summed < min_clients(); INVALID_ARGUMENT for a
  // sum of the wrong length. A decoded sum above DecodedNormBound comes back with `rejected`
  // set (nothing changes). Otherwise updates the adaptive clip.
  absl::StatusOr<AggregateResult> FinishDistributed(const privacy::RoundPrivacyParams& params,
                                                    const std::vector<uint32_t>& sum,
                                                    int num_summed);
  // Central / none: the devices' prepared updates (clipped by the devices; clipped again
  // here, since a trusted aggregator does not trust them either). Noise from `rng`.
  absl::StatusOr<AggregateResult> FinishCentral(
      const privacy::RoundPrivacyParams& params,
      const std::vector<const privacy::PreparedUpdate*>& updates, RandomSource& rng);

 private:
  explicit RoundAggregator(const PrivacyRecipe& recipe) : recipe_(recipe) {}
  privacy::DdgConfig ValueConfig(double clip) const;
  double Denominator(int num_summed) const;

  PrivacyRecipe recipe_;
  double value_noise_ = 0;
  double count_stddev_ = 0;  // s of the noise split (adaptive clipping with DP)
  std::optional<privacy::AdaptiveClipper> clipper_;
};

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_ROUND_AGGREGATOR_H_
