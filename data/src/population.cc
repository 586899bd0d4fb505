#include "fedlora/data/population.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "fedlora/common/random.h"

namespace fedlora::data {

PopulationSplit SplitPopulation(size_t n_users, double heldout_fraction, uint64_t seed) {
  const double f = std::clamp(heldout_fraction, 0.0, 1.0);
  size_t n_heldout = static_cast<size_t>(std::llround(static_cast<double>(n_users) * f));
  if (f > 0 && n_users >= 2 && n_heldout == 0) n_heldout = 1;
  if (f < 1 && n_users >= 1 && n_heldout >= n_users) n_heldout = n_users - 1;

  std::vector<int> order(n_users);
  std::iota(order.begin(), order.end(), 0);
  SplitMix64 rng(DeriveSeed(seed, /*stream=*/0x706f70));  // "pop"
  rng.Shuffle(order);

  PopulationSplit split;
  split.heldout_users.assign(order.begin(), order.begin() + static_cast<long>(n_heldout));
  split.train_users.assign(order.begin() + static_cast<long>(n_heldout), order.end());
  std::sort(split.heldout_users.begin(), split.heldout_users.end());
  std::sort(split.train_users.begin(), split.train_users.end());
  return split;
}

}  // namespace fedlora::data
