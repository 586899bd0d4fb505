// Shamir t-of-n secret sharing of 32-byte secrets over GF(2^61 - 1). A secret is cut into
// five chunks (7,7,7,7,4 bytes, each < 2^56 < p) that are shared with independent random
// polynomials of degree t - 1 evaluated at x = holder id + 1.
#ifndef FEDLORA_SECAGG_SHAMIR_H_
#define FEDLORA_SECAGG_SHAMIR_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/secagg/rng.h"
#include "fedlora/secagg/secret.h"

namespace fedlora::secagg {

inline constexpr int kShamirChunks = 5;
inline constexpr size_t kShamirShareBytes = kShamirChunks * 8;

struct ShamirShare {
  uint64_t x = 0;  // evaluation point, 1 .. p-1
  std::array<uint64_t, kShamirChunks> y{};
  ~ShamirShare();
};

// Serializes the y values (40 bytes little-endian); x travels as the holder's device id.
std::string SerializeShare(const ShamirShare& share);
// INVALID_ARGUMENT unless `bytes` is 40 bytes with every element < p.
absl::StatusOr<ShamirShare> ParseShare(uint64_t x, const std::string& bytes);

// Returns one share per x in `xs` (same order). INVALID_ARGUMENT unless 1 <= threshold <=
// xs.size() and the xs are distinct and in [1, p).
absl::StatusOr<std::vector<ShamirShare>> ShamirSplit(const Secret32& secret, int threshold,
                                                     const std::vector<uint64_t>& xs,
                                                     RandomSource& rng);

// Lagrange coefficients at 0 for the points `xs` (distinct, non-zero): secret chunk =
// sum_i coeff[i] * y_i. Cache them when many secrets are rebuilt from the same holders.
std::vector<uint64_t> LagrangeAtZero(const std::vector<uint64_t>& xs);

// Rebuilds the secret from exactly the shares given, using `coeffs` = LagrangeAtZero of
// their xs. DATA_LOSS if a rebuilt chunk is out of range (inconsistent or forged shares).
absl::StatusOr<Secret32> ShamirCombine(const std::vector<const ShamirShare*>& shares,
                                       const std::vector<uint64_t>& coeffs);

// Convenience: uses the first `threshold` shares. FAILED_PRECONDITION if fewer than
// `threshold` shares; INVALID_ARGUMENT for duplicate or zero xs; DATA_LOSS as above.
absl::StatusOr<Secret32> ShamirReconstruct(const std::vector<ShamirShare>& shares, int threshold);

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_SHAMIR_H_
