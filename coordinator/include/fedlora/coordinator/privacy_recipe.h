// The privacy recipe of a federated training run, as the coordinator holds it: what it
// publishes to devices each round and what the accountant charges. Transport-free; the
// simulator and the gRPC coordinator build the same recipe.
#ifndef FEDLORA_COORDINATOR_PRIVACY_RECIPE_H_
#define FEDLORA_COORDINATOR_PRIVACY_RECIPE_H_

#include <cstddef>

#include "absl/status/status.h"
#include "fedlora/privacy/prepare_update.h"
#include "fedlora/privacy/round_accounting.h"

namespace fedlora::coordinator {

struct PrivacyRecipe {
  privacy::DpMode mode = privacy::DpMode::kDistributed;
  size_t dim = 0;           // length of the flat adapter
  int population = 0;       // N: devices eligible each round (public)
  int expected_cohort = 0;  // devices per round: the fixed cohort, or N q under Poisson (public)
  // The largest cohort a round may sum (public): the DDG codec's bit headroom (its
  // expected_clients) and the count's are sized for it. 0 = expected_cohort. A Poisson sample
  // above it cannot be summed safely; the gRPC coordinator aborts such a round (charged).
  int max_cohort = 0;
  privacy::Sampling sampling = privacy::Sampling::kFixedSize;
  double poisson_rate = 0;  // q under Poisson sampling (0 = expected_cohort / population)

  double noise_multiplier = 0;  // z: total, value and clipped count together
  double clip = 0;              // fixed bound, or the initial bound when adaptive
  bool adaptive_clip = false;
  double target_quantile = 0.5;
  double clip_lr = 0.2;

  int bits = 20;               // secure-aggregation modulus 2^bits (distributed)
  double min_survivors = 0.8;  // noise calibrated for ceil(min_survivors * expected_cohort)
  double modclip_prob = 1e-4;
  // Sharded secure aggregation: a round of n sampled devices runs as ceil(n / max_shard_size)
  // sessions of balanced size (coordinator/shard_plan.h). 0 = one session per round. It changes
  // every device's noise (ShardMinClients), so it is pinned with the other parameters.
  int max_shard_size = 0;

  double delta = 0;           // target delta (> 0 unless mode is none)
  double epsilon_budget = 0;  // 0 = none; else no round may take epsilon above it
};

// Sampling probability per round: poisson_rate, or expected_cohort / population.
double SamplingRate(const PrivacyRecipe& recipe);
// Devices whose shares must survive for the noise to reach its target (>= 1).
int MinClients(const PrivacyRecipe& recipe);
// Survivors each unmasked sum must hold, which every device's noise share is calibrated for:
// MinClients without sharding (or when no sample can exceed max_shard_size). With sharding the
// coordinator sees each shard's sum, so a shard at its minimum must carry the full noise on its
// own: max(2, min(MinClients, ceil(min_survivors x SmallestShard))). It depends only on public
// parameters, never on the private sample size, so the charge (and every printed epsilon) does
// not reveal how many devices were sampled.
int ShardMinClients(const PrivacyRecipe& recipe);
// The smallest shard a balanced split of n > max_shard_size devices into ceil(n / S) shards can
// have, over every n: floor((S + 1) / 2) (n = S + 1). 0 when no round can be sharded (no
// max_shard_size, or max_cohort <= max_shard_size).
int SmallestShard(const PrivacyRecipe& recipe);
// The largest cohort summed: max_cohort, or expected_cohort when it is 0.
int MaxCohort(const PrivacyRecipe& recipe);
// A default max_cohort for Poisson sampling with mean mu = SamplingRate x population: the
// smaller of the population and ceil(mu + 5 sqrt(mu) + 2), and at least expected_cohort (a
// sample above it has probability below about 1e-6 for mu >= 10).
int DefaultMaxCohort(const PrivacyRecipe& recipe);
// INVALID_ARGUMENT naming the field for an inconsistent recipe.
absl::Status ValidateRecipe(const PrivacyRecipe& recipe);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_PRIVACY_RECIPE_H_
