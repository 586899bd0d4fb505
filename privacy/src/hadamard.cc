#include "fedlora/privacy/hadamard.h"

#include <cassert>
#include <cmath>

#include "fedlora/common/random.h"

namespace fedlora::privacy {
namespace {

// Multiplies x[0, n) by +-1 signs drawn 64 at a time from SeededRandom(seed): public,
// shared randomness that every device and the server derive from the round's rotation seed.
void ApplySigns(double* x, size_t n, uint64_t seed) {
  SeededRandom rng(seed);
  for (size_t i = 0; i < n; i += 64) {
    uint64_t bits = rng.NextU64();
    const size_t end = std::min(n, i + 64);
    for (size_t j = i; j < end; ++j, bits >>= 1) {
      if (bits & 1) x[j] = -x[j];
    }
  }
}

}  // namespace

size_t PaddedDim(size_t d) {
  size_t p = 1;
  while (p < d) p <<= 1;
  return p;
}

void FastWalshHadamard(double* x, size_t n) {
  assert(n > 0 && (n & (n - 1)) == 0);
  for (size_t h = 1; h < n; h <<= 1) {
    for (size_t i = 0; i < n; i += 2 * h) {
      double* a = x + i;
      double* b = x + i + h;
      for (size_t j = 0; j < h; ++j) {
        const double u = a[j], v = b[j];
        a[j] = u + v;
        b[j] = u - v;
      }
    }
  }
  const double norm = 1.0 / std::sqrt(static_cast<double>(n));
  for (size_t i = 0; i < n; ++i) x[i] *= norm;
}

void RotateForward(const float* x, size_t d, uint64_t seed, std::vector<double>* out) {
  const size_t n = PaddedDim(d);
  out->assign(n, 0.0);
  for (size_t i = 0; i < d; ++i) (*out)[i] = x[i];
  ApplySigns(out->data(), n, seed);
  FastWalshHadamard(out->data(), n);
}

void RotateInverse(std::vector<double>& y, size_t d, uint64_t seed, std::vector<float>* out) {
  const size_t n = y.size();
  FastWalshHadamard(y.data(), n);
  ApplySigns(y.data(), n, seed);
  out->resize(d);
  for (size_t i = 0; i < d; ++i) (*out)[i] = static_cast<float>(y[i]);
}

}  // namespace fedlora::privacy
