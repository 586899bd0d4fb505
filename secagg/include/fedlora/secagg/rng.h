// Random sources for secure aggregation. Protocol code takes an Rng& so that tests are
// deterministic (DeterministicRng) while production uses the OS-seeded OpenSSL DRBG.
#ifndef FEDLORA_SECAGG_RNG_H_
#define FEDLORA_SECAGG_RNG_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "fedlora/secagg/secret.h"

namespace fedlora::secagg {

class Rng {
 public:
  virtual ~Rng() = default;
  // Fills out[0..n) with random bytes. Failure of the underlying generator is fatal
  // (a crypto library that cannot produce randomness is a programmer/platform error).
  virtual void Fill(uint8_t* out, size_t n) = 0;

  uint64_t NextU64();
  // Uniform in [0, bound); bound > 0.
  uint64_t Uniform(uint64_t bound);
  // Uniform in [0, 1).
  double UniformDouble();
  Secret32 NextSecret();
};

// RAND_bytes (OpenSSL's CTR-DRBG seeded from the OS). Use in production.
class SecureRng final : public Rng {
 public:
  void Fill(uint8_t* out, size_t n) override;
};

// AES-256-CTR keystream keyed by SHA-256 of a seed: reproducible, for tests, simulations
// and for deriving per-device generators in the in-process driver. Not thread-safe.
class DeterministicRng final : public Rng {
 public:
  explicit DeterministicRng(uint64_t seed);
  explicit DeterministicRng(const Secret32& key);
  ~DeterministicRng() override;
  DeterministicRng(const DeterministicRng&) = delete;
  DeterministicRng& operator=(const DeterministicRng&) = delete;

  void Fill(uint8_t* out, size_t n) override;

 private:
  void Init(const Secret32& key);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_RNG_H_
