// One Poisson coin per device per round, computable by any process that holds the round's
// coin key (docs/coordinator.md, "Edge processes"): HMAC-SHA256(key, round || device id), its
// first 53 bits read as a uniform number u in [0, 1); the device is sampled when u < q.
//
// The key is 32 bytes drawn from the coordinator's RandomSource when the round's selection
// opens (SecureRandom in a deployment). It never leaves the coordinator's processes and
// database, so to devices and observers the coins are independent Bernoulli(q) draws, which
// is what amplification by Poisson sampling assumes; a device's retries, and any number of
// edge processes, get the same coin without sharing any state.
#ifndef FEDLORA_COORDINATOR_SELECTION_COIN_H_
#define FEDLORA_COORDINATOR_SELECTION_COIN_H_

#include <cstdint>
#include <string>

namespace fedlora::coordinator {

inline constexpr size_t kCoinKeyBytes = 32;

// u in [0, 1) for (key, round, device): a multiple of 2^-53.
double CoinUniform(const std::string& key, uint64_t round, const std::string& device_id);

// True when the device is sampled for the round at rate q (always for q >= 1, never for q <= 0).
bool CoinSelected(const std::string& key, uint64_t round, const std::string& device_id, double q);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_SELECTION_COIN_H_
