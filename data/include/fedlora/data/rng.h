// A small, portable, seeded PRNG (splitmix64) with explicitly implemented distributions.
//
// std::uniform_int_distribution and friends are implementation-defined, so the same seed can
// give different data on different standard libraries. Everything in fedlora_data that is
// "deterministic for a seed" uses this class instead, so datasets are bit-identical everywhere.
#ifndef FEDLORA_DATA_RNG_H_
#define FEDLORA_DATA_RNG_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fedlora::data {

// Returns a well-mixed seed for sub-stream `stream` of `seed` (e.g. one stream per user), so
// that adding users does not change the data of the existing ones.
uint64_t DeriveSeed(uint64_t seed, uint64_t stream);

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  // Returns the next 64 random bits.
  uint64_t Next();
  // Returns a uniform integer in [0, n); n must be > 0 (unbiased, by rejection).
  uint64_t Uniform(uint64_t n);
  // Returns a uniform double in [0, 1) with 53 random bits.
  double UniformDouble();
  // Returns true with probability p (p <= 0: never, p >= 1: always).
  bool Bernoulli(double p);
  // Returns an index in [0, weights.size()) drawn proportionally to the non-negative weights;
  // weights must not be empty and must have a positive sum.
  size_t Weighted(const std::vector<double>& weights);
  // Shuffles `v` in place (Fisher-Yates).
  template <typename T>
  void Shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) {
      size_t j = static_cast<size_t>(Uniform(i));
      std::swap(v[i - 1], v[j]);
    }
  }
  // Returns a uniformly chosen element of a non-empty vector.
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(Uniform(v.size()))];
  }

 private:
  uint64_t state_;
};

}  // namespace fedlora::data

#endif  // FEDLORA_DATA_RNG_H_
