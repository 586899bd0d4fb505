#include "fedlora/coordinator/privacy_recipe.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace fedlora::coordinator {

double SamplingRate(const PrivacyRecipe& r) {
  if (r.sampling == privacy::Sampling::kPoisson && r.poisson_rate > 0) return r.poisson_rate;
  return r.population > 0 ? std::min(1.0, double(r.expected_cohort) / r.population) : 1.0;
}

int MinClients(const PrivacyRecipe& r) {
  return std::max(1, static_cast<int>(std::ceil(r.min_survivors * r.expected_cohort - 1e-9)));
}

int MaxCohort(const PrivacyRecipe& r) {
  return r.max_cohort > 0 ? r.max_cohort : r.expected_cohort;
}

int SmallestShard(const PrivacyRecipe& r) {
  if (r.max_shard_size <= 0 || MaxCohort(r) <= r.max_shard_size) return 0;
  return (r.max_shard_size + 1) / 2;
}

int ShardMinClients(const PrivacyRecipe& r) {
  const int round_min = MinClients(r);
  const int smallest = SmallestShard(r);
  if (smallest == 0) return round_min;
  const int shard = static_cast<int>(std::ceil(r.min_survivors * smallest - 1e-9));
  return std::max(2, std::min(round_min, shard));
}

int DefaultMaxCohort(const PrivacyRecipe& r) {
  const double mu = SamplingRate(r) * std::max(r.population, 0);
  const int tail = static_cast<int>(std::ceil(mu + 5 * std::sqrt(mu) + 2));
  return std::max(r.expected_cohort, std::min(r.population, tail));
}

absl::Status ValidateRecipe(const PrivacyRecipe& r) {
  auto bad = [](const char* field, const std::string& what) {
    return absl::InvalidArgumentError(absl::StrFormat("privacy recipe: %s %s", field, what));
  };
  if (r.dim == 0) return bad("dim", "must be > 0");
  if (r.population < 1) return bad("population", "must be >= 1");
  if (r.expected_cohort < 1 || r.expected_cohort > r.population) {
    return bad("expected_cohort", absl::StrFormat("must be in [1, population = %d], got %d",
                                                  r.population, r.expected_cohort));
  }
  if (r.max_cohort != 0 && r.max_cohort < r.expected_cohort) {
    return bad("max_cohort", absl::StrFormat("must be 0 (= expected_cohort) or >= expected_cohort "
                                             "= %d, got %d",
                                             r.expected_cohort, r.max_cohort));
  }
  if (r.sampling == privacy::Sampling::kPoisson && !(r.poisson_rate >= 0 && r.poisson_rate <= 1)) {
    return bad("poisson_rate", absl::StrFormat("must be in [0, 1], got %g", r.poisson_rate));
  }
  if (r.mode == privacy::DpMode::kNone) return absl::OkStatus();
  if (!(r.noise_multiplier > 0) || !std::isfinite(r.noise_multiplier)) {
    return bad("noise_multiplier",
               absl::StrFormat("must be > 0 with DP, got %g", r.noise_multiplier));
  }
  if (!(r.clip > 0) || !std::isfinite(r.clip)) {
    return bad("clip", absl::StrFormat("must be > 0, got %g", r.clip));
  }
  if (!(r.delta > 0 && r.delta < 1)) {
    return bad("delta", absl::StrFormat("must be in (0, 1), got %g", r.delta));
  }
  if (!(r.min_survivors > 0 && r.min_survivors <= 1)) {
    return bad("min_survivors", absl::StrFormat("must be in (0, 1], got %g", r.min_survivors));
  }
  if (r.epsilon_budget < 0) return bad("epsilon_budget", "must be >= 0");
  if (r.max_shard_size != 0 && r.max_shard_size < 3) {
    return bad("max_shard_size",
               absl::StrFormat("must be 0 (one session per round) or >= 3 (a shard of at least "
                               "2 devices), got %d",
                               r.max_shard_size));
  }
  return absl::OkStatus();
}

}  // namespace fedlora::coordinator
