#include "fedlora/coordinator/shard_plan.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_format.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/secagg/session_config.h"

namespace fedlora::coordinator {

std::vector<uint32_t> ShardSizes(uint32_t n, int max_shard_size) {
  const uint32_t s = max_shard_size > 0 ? static_cast<uint32_t>(max_shard_size) : 0;
  const uint32_t k = (s == 0 || n <= s) ? 1 : (n + s - 1) / s;
  std::vector<uint32_t> sizes(k, n / k);
  for (uint32_t i = 0; i < n % k; ++i) sizes[i]++;
  return sizes;
}

absl::StatusOr<ShardPlan> PlanShards(const RoundAggregator& aggregator,
                                     const privacy::RoundPrivacyParams& params,
                                     uint32_t num_devices, proto::SecAggGraph graph,
                                     RandomSource& rng) {
  const PrivacyRecipe& recipe = aggregator.recipe();
  ShardPlan plan;
  plan.shard_min = static_cast<uint32_t>(aggregator.shard_min_clients());
  plan.round_min = static_cast<uint32_t>(aggregator.min_clients());
  const std::vector<uint32_t> sizes = ShardSizes(num_devices, recipe.max_shard_size);
  if (num_devices < 2 || sizes.back() < plan.shard_min) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "a shard of %d devices is below its minimum of %d survivors (hint: the selection "
        "requires at least the round's minimum; max_shard_size must be at least twice the shard "
        "minimum)",
        sizes.back(), plan.shard_min));
  }
  std::vector<uint32_t> order(num_devices);
  std::iota(order.begin(), order.end(), 0u);
  // One shard keeps the cohort's order and draws nothing, as an unsharded round always did.
  if (sizes.size() > 1) rng.Shuffle(order);
  size_t next = 0;
  for (uint32_t size : sizes) {
    Shard shard;
    shard.members.assign(order.begin() + next, order.begin() + next + size);
    std::sort(shard.members.begin(), shard.members.end());
    next += size;
    FEDLORA_ASSIGN_OR_RETURN(secagg::SessionParams p, aggregator.SessionFor(params, size));
    p.graph = graph;
    // Expected dropout (derives the threshold and degree): what the noise calibration
    // tolerates (1 - min_survivors), capped so that the complete graph's honest-majority
    // threshold stays reachable for small n.
    const double majority = 1 - (std::floor(size / 2.0) + 1) / std::max(1.0, double(size));
    p.expected_dropout_rate =
        std::max(0.0, std::min({0.45, majority, std::max(0.05, 1 - recipe.min_survivors)}));
    auto config = secagg::MakeSessionConfig(p, rng);
    if (!config.ok() && p.graph == proto::SECAGG_GRAPH_KREGULAR) {
      p.graph = proto::SECAGG_GRAPH_COMPLETE;  // too few devices for SecAgg+
      config = secagg::MakeSessionConfig(p, rng);
    }
    if (!config.ok()) return config.status();
    shard.session = std::move(*config);
    plan.shards.push_back(std::move(shard));
  }
  return plan;
}

absl::StatusOr<std::vector<uint32_t>> AddShardSums(const std::vector<std::vector<uint32_t>>& sums,
                                                   int bits) {
  if (sums.empty()) return absl::InvalidArgumentError("no shard sums to add");
  if (bits < 1 || bits > 32) {
    return absl::InvalidArgumentError(absl::StrFormat("bits must be in [1, 32], got %d", bits));
  }
  const uint64_t modulus = uint64_t{1} << bits;
  std::vector<uint32_t> total(sums[0].size(), 0);
  for (const auto& s : sums) {
    if (s.size() != total.size()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "shard sums have different lengths (%d and %d)", s.size(), total.size()));
    }
    for (size_t j = 0; j < s.size(); ++j) {
      if (s[j] >= modulus) {
        return absl::InvalidArgumentError(
            absl::StrFormat("a shard sum's entry %d is not below 2^%d", s[j], bits));
      }
      total[j] = static_cast<uint32_t>((uint64_t{total[j]} + s[j]) % modulus);
    }
  }
  return total;
}

}  // namespace fedlora::coordinator
