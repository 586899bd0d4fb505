#include "fedlora/secagg/shamir.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "fedlora/secagg/prime_field.h"

namespace fedlora::secagg {
namespace {

constexpr int kChunkBytes[kShamirChunks] = {7, 7, 7, 7, 4};

void ChunkSecret(const Secret32& s, uint64_t* chunks) {
  int off = 0;
  for (int c = 0; c < kShamirChunks; ++c) {
    uint64_t v = 0;
    for (int i = kChunkBytes[c] - 1; i >= 0; --i) v = (v << 8) | s.data()[off + i];
    chunks[c] = v;
    off += kChunkBytes[c];
  }
}

// Uniform in [0, p) by rejection on 61 random bits.
void RandomFieldElements(RandomSource& rng, uint64_t* out, size_t n) {
  rng.Fill(reinterpret_cast<uint8_t*>(out), n * sizeof(uint64_t));
  for (size_t i = 0; i < n; ++i) {
    uint64_t v = out[i] & field::kPrime;
    while (v == field::kPrime) v = rng.NextU64() & field::kPrime;
    out[i] = v;
  }
}

absl::Status CheckDistinctXs(const std::vector<uint64_t>& xs) {
  std::set<uint64_t> seen;
  for (uint64_t x : xs) {
    if (x == 0 || x >= field::kPrime) {
      return absl::InvalidArgumentError(
          absl::StrCat("shamir: evaluation point ", x, " outside [1, p)"));
    }
    if (!seen.insert(x).second) {
      return absl::InvalidArgumentError(absl::StrCat("shamir: duplicate evaluation point ", x));
    }
  }
  return absl::OkStatus();
}

}  // namespace

ShamirShare::~ShamirShare() { OPENSSL_cleanse(y.data(), sizeof(y)); }

std::string SerializeShare(const ShamirShare& share) {
  std::string out(kShamirShareBytes, '\0');
  for (int c = 0; c < kShamirChunks; ++c) {
    for (int i = 0; i < 8; ++i) out[c * 8 + i] = static_cast<char>(share.y[c] >> (8 * i));
  }
  return out;
}

absl::StatusOr<ShamirShare> ParseShare(uint64_t x, const std::string& bytes) {
  if (bytes.size() != kShamirShareBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("shamir: share has ", bytes.size(), " bytes, expected ", kShamirShareBytes));
  }
  ShamirShare share;
  share.x = x;
  for (int c = 0; c < kShamirChunks; ++c) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(bytes[c * 8 + i]);
    if (v >= field::kPrime) return absl::InvalidArgumentError("shamir: share element >= p");
    share.y[c] = v;
  }
  return share;
}

absl::StatusOr<std::vector<ShamirShare>> ShamirSplit(const Secret32& secret, int threshold,
                                                     const std::vector<uint64_t>& xs,
                                                     RandomSource& rng) {
  if (threshold < 1 || static_cast<size_t>(threshold) > xs.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("shamir: threshold ", threshold, " not in [1, ", xs.size(), "]"));
  }
  if (auto st = CheckDistinctXs(xs); !st.ok()) return st;
  // coeffs[c * t + j]: coefficient of x^j of chunk c's polynomial; coeffs[c * t] = secret.
  const int t = threshold;
  std::vector<uint64_t> coeffs(static_cast<size_t>(kShamirChunks) * t);
  for (int c = 0; c < kShamirChunks; ++c) {
    RandomFieldElements(rng, coeffs.data() + c * t + 1, t - 1);
  }
  uint64_t chunks[kShamirChunks];
  ChunkSecret(secret, chunks);
  for (int c = 0; c < kShamirChunks; ++c) coeffs[c * t] = chunks[c];
  OPENSSL_cleanse(chunks, sizeof(chunks));

  std::vector<ShamirShare> shares(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    shares[i].x = xs[i];
    // Horner, the five chunk polynomials interleaved for instruction-level parallelism.
    uint64_t acc[kShamirChunks];
    for (int c = 0; c < kShamirChunks; ++c) acc[c] = coeffs[c * t + t - 1];
    for (int j = t - 2; j >= 0; --j) {
      for (int c = 0; c < kShamirChunks; ++c) {
        acc[c] = field::Add(field::Mul(acc[c], xs[i]), coeffs[c * t + j]);
      }
    }
    for (int c = 0; c < kShamirChunks; ++c) shares[i].y[c] = acc[c];
  }
  OPENSSL_cleanse(coeffs.data(), coeffs.size() * sizeof(uint64_t));
  return shares;
}

std::vector<uint64_t> LagrangeAtZero(const std::vector<uint64_t>& xs) {
  const size_t n = xs.size();
  std::vector<uint64_t> num(n, 1), den(n, 1);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) {
      if (i == j) continue;
      // l_i(0) = prod_{j != i} (0 - x_j) / (x_i - x_j) = prod x_j / (x_j - x_i)
      num[i] = field::Mul(num[i], xs[j]);
      den[i] = field::Mul(den[i], field::Sub(xs[j], xs[i]));
    }
  }
  // One inversion for all denominators (Montgomery's trick).
  std::vector<uint64_t> prefix(n + 1, 1);
  for (size_t i = 0; i < n; ++i) prefix[i + 1] = field::Mul(prefix[i], den[i]);
  uint64_t inv = field::Inv(prefix[n]);
  std::vector<uint64_t> out(n);
  for (size_t i = n; i-- > 0;) {
    const uint64_t inv_den = field::Mul(inv, prefix[i]);
    inv = field::Mul(inv, den[i]);
    out[i] = field::Mul(num[i], inv_den);
  }
  return out;
}

absl::StatusOr<Secret32> ShamirCombine(const std::vector<const ShamirShare*>& shares,
                                       const std::vector<uint64_t>& coeffs) {
  if (shares.size() != coeffs.size() || shares.empty()) {
    return absl::InvalidArgumentError("shamir: shares and coefficients differ in number");
  }
  uint64_t chunks[kShamirChunks] = {0};
  for (size_t i = 0; i < shares.size(); ++i) {
    for (int c = 0; c < kShamirChunks; ++c) {
      chunks[c] = field::Add(chunks[c], field::Mul(coeffs[i], shares[i]->y[c]));
    }
  }
  Secret32 secret;
  int off = 0;
  bool in_range = true;
  for (int c = 0; c < kShamirChunks; ++c) {
    const int bits = 8 * kChunkBytes[c];
    in_range &= (chunks[c] >> bits) == 0;
    for (int i = 0; i < kChunkBytes[c]; ++i) {
      secret.data()[off + i] = static_cast<uint8_t>(chunks[c] >> (8 * i));
    }
    off += kChunkBytes[c];
  }
  OPENSSL_cleanse(chunks, sizeof(chunks));
  if (!in_range) {
    return absl::DataLossError(
        "shamir: reconstructed value out of range (hint: inconsistent or forged shares)");
  }
  return secret;
}

absl::StatusOr<Secret32> ShamirReconstruct(const std::vector<ShamirShare>& shares, int threshold) {
  if (threshold < 1 || shares.size() < static_cast<size_t>(threshold)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shamir: ", shares.size(), " shares, threshold ", threshold, " (hint: too many dropouts)"));
  }
  std::vector<uint64_t> xs;
  std::vector<const ShamirShare*> used;
  for (int i = 0; i < threshold; ++i) {
    xs.push_back(shares[i].x);
    used.push_back(&shares[i]);
  }
  if (auto st = CheckDistinctXs(xs); !st.ok()) return st;
  return ShamirCombine(used, LagrangeAtZero(xs));
}

}  // namespace fedlora::secagg
