// Internal: portable random draws from a std::mt19937_64 (the standard library's
// distributions differ between implementations; these do not, so seeded runs repeat anywhere).
#ifndef FEDLORA_PRIVACY_SRC_RANDOM_UTIL_H_
#define FEDLORA_PRIVACY_SRC_RANDOM_UTIL_H_

#include <cmath>
#include <cstdint>
#include <random>

namespace fedlora::privacy {

// Uniform double in [0, 1) with 53 random bits.
inline double UniformDouble(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

// Standard normal via the Marsaglia polar method.
inline double StandardNormal(std::mt19937_64& rng) {
  double u, v, s;
  do {
    u = 2 * UniformDouble(rng) - 1;
    v = 2 * UniformDouble(rng) - 1;
    s = u * u + v * v;
  } while (s >= 1 || s == 0);
  return u * std::sqrt(-2 * std::log(s) / s);
}

// Uniform integer in [0, bound), bound >= 1, without modulo bias (Lemire's method).
inline uint64_t UniformBelow(std::mt19937_64& rng, uint64_t bound) {
  unsigned __int128 m = static_cast<unsigned __int128>(rng()) * bound;
  uint64_t low = static_cast<uint64_t>(m);
  if (low < bound) {
    const uint64_t threshold = -bound % bound;
    while (low < threshold) {
      m = static_cast<unsigned __int128>(rng()) * bound;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

}  // namespace fedlora::privacy

#endif  // FEDLORA_PRIVACY_SRC_RANDOM_UTIL_H_
