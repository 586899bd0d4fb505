// Randomized Hadamard rotation used by the distributed discrete Gaussian: x -> H D x with D a
// diagonal of random signs (derived from a per-round seed shared by all devices and the server)
// and H the orthonormal Walsh-Hadamard matrix of size 2^k >= d. It preserves L2 norms and
// spreads a vector's mass evenly over coordinates, which bounds the modular-wrap probability.
#ifndef FEDLORA_PRIVACY_HADAMARD_H_
#define FEDLORA_PRIVACY_HADAMARD_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fedlora::privacy {

// Smallest power of two >= max(d, 1).
size_t PaddedDim(size_t d);

// In-place orthonormal fast Walsh-Hadamard transform (scaled by 1/sqrt(n)); n must be a power
// of two (CHECK-style programmer error otherwise). Its own inverse.
void FastWalshHadamard(double* x, size_t n);

// out = H D pad(x): x[0, d) padded with zeros to PaddedDim(d). Signs come from `seed`.
void RotateForward(const float* x, size_t d, uint64_t seed, std::vector<double>* out);

// Inverse of RotateForward: y has PaddedDim(d) entries (modified in place); the first d
// entries of D H y are written to out.
void RotateInverse(std::vector<double>& y, size_t d, uint64_t seed, std::vector<float>* out);

}  // namespace fedlora::privacy

#endif  // FEDLORA_PRIVACY_HADAMARD_H_
