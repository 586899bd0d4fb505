// Splitting the user population into a training population and held-out users.
//
// Held-out users never take part in federated training; they measure how well the global
// model (and a freshly personalized adapter) does on people the federation has not seen.
#ifndef FEDLORA_DATA_POPULATION_H_
#define FEDLORA_DATA_POPULATION_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fedlora::data {

struct PopulationSplit {
  std::vector<int> train_users;    // Indices into FederatedDataset::users, ascending.
  std::vector<int> heldout_users;  // Disjoint from train_users, ascending.
};

// Returns a seeded random split of users 0..n_users-1. The held-out count is
// round(n_users * heldout_fraction), clamped to [0, n_users]; it is at least 1 when
// heldout_fraction > 0 and n_users >= 2, and at most n_users - 1 when heldout_fraction < 1.
// heldout_fraction outside [0, 1] is clamped. Same (n_users, fraction, seed) -> same split.
PopulationSplit SplitPopulation(size_t n_users, double heldout_fraction, uint64_t seed);

}  // namespace fedlora::data

#endif  // FEDLORA_DATA_POPULATION_H_
