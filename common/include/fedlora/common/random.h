// One interface for random bits, injected everywhere fedlora needs randomness.
//
// Real devices and the real coordinator use SecureRandom (keyed and rekeyed from OpenSSL's
// RAND_bytes, which the operating system seeds): the noise a device adds can never be derived from
// anything the server knows. Only tests and the simulator may use a seeded source (SeededRandom, or
// the fast non-cryptographic SplitMix64 for data shuffles), and the simulator's report says so.
//
// The derived draws (Uniform, UniformDouble, StandardNormal, ...) are written out here rather
// than taken from <random>, whose distributions differ between standard libraries: a seed
// reproduces the same numbers on every platform.
#ifndef FEDLORA_COMMON_RANDOM_H_
#define FEDLORA_COMMON_RANDOM_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace fedlora {

class RandomSource {
 public:
  virtual ~RandomSource() = default;

  // Fills out[0, n) with random bytes. A generator that cannot produce randomness (OpenSSL
  // failure) is a platform error: the process aborts rather than continue without it.
  virtual void Fill(uint8_t* out, size_t n) = 0;
  // 64 random bits (the next 8 bytes of the stream, little endian).
  virtual uint64_t NextU64();
  // True only for a cryptographically secure, unpredictable source (SecureRandom).
  virtual bool secure() const = 0;

  // Uniform integer in [0, bound); bound must be > 0. Unbiased (rejection of the top
  // partial bucket).
  uint64_t Uniform(uint64_t bound);
  // Uniform double in [0, 1) with 53 random bits.
  double UniformDouble();
  // Standard normal (Marsaglia's polar method).
  double StandardNormal();
  // True with probability p (p <= 0: never, p >= 1: always).
  bool Bernoulli(double p);
  // An index in [0, weights.size()) drawn proportionally to the non-negative weights
  // (non-empty, positive sum).
  size_t Weighted(const std::vector<double>& weights);
  // Fisher-Yates shuffle in place.
  template <typename T>
  void Shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) {
      size_t j = static_cast<size_t>(Uniform(i));
      std::swap(v[i - 1], v[j]);
    }
  }
  // A uniformly chosen element of a non-empty vector.
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(Uniform(v.size()))];
  }
};

// A cryptographically secure generator: an AES-256-CTR keystream whose key and nonce come from
// OpenSSL's RAND_bytes (OpenSSL 3's DRBG, seeded and reseeded by the operating system), rekeyed
// from RAND_bytes every 1 MiB of output and after a fork. Buffered in 4 KiB blocks that are
// cleansed as they are handed out and on destruction. One instance per thread (not
// thread-safe).
class SecureRandom final : public RandomSource {
 public:
  SecureRandom();
  ~SecureRandom() override;
  SecureRandom(const SecureRandom&) = delete;
  SecureRandom& operator=(const SecureRandom&) = delete;

  void Fill(uint8_t* out, size_t n) override;
  uint64_t NextU64() override;
  bool secure() const override { return true; }

 private:
  void Rekey();
  void Refill();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// AES-256-CTR keystream keyed by SHA-256 of a seed: reproducible on every platform, for tests
// and simulations (and for expanding a secret key into a stream). Not thread-safe.
class SeededRandom final : public RandomSource {
 public:
  explicit SeededRandom(uint64_t seed);
  // Keyed directly by 32 bytes (e.g. a secret derived by key agreement).
  explicit SeededRandom(const uint8_t key[32]);
  ~SeededRandom() override;
  SeededRandom(const SeededRandom&) = delete;
  SeededRandom& operator=(const SeededRandom&) = delete;

  void Fill(uint8_t* out, size_t n) override;
  uint64_t NextU64() override;
  bool secure() const override { return false; }

 private:
  void Init(const uint8_t key[32]);
  void Refill();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// splitmix64: fast and statistically good, not cryptographic. For reproducible data
// generation (synthetic personas, splits, shuffles), where a seed must give bit-identical data
// everywhere. Never for privacy noise or keys.
class SplitMix64 final : public RandomSource {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  void Fill(uint8_t* out, size_t n) override;
  uint64_t NextU64() override;
  bool secure() const override { return false; }

 private:
  uint64_t state_;
};

// A well-mixed seed for sub-stream `stream` of `seed` (one stream per user, per round, ...), so
// that adding streams does not change the existing ones.
uint64_t DeriveSeed(uint64_t seed, uint64_t stream);

}  // namespace fedlora

#endif  // FEDLORA_COMMON_RANDOM_H_
