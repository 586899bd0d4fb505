// Randomized block Hadamard transform for incoherence processing (QuIP#, CALDERA):
// T = blockdiag(Had_b / sqrt(b)) * diag(s), an orthogonal [n, n] matrix with b the largest
// power of two dividing n (at most 1024) and signs s_i = +-1 from SplitMix64(seed): bit 0 of
// the i-th NextU64() (1 -> -1). Weights are stored as W T^T and applied to T x.
#ifndef FEDLORA_COMPRESS_HADAMARD_H_
#define FEDLORA_COMPRESS_HADAMARD_H_

#include <torch/types.h>

#include <cstdint>

namespace fedlora::compress {

class RandomHadamard {
 public:
  RandomHadamard(int64_t n, uint64_t seed);
  int64_t n() const { return n_; }
  int64_t block() const { return block_; }
  uint64_t seed() const { return seed_; }
  // T x along the last dimension (any float dtype).
  torch::Tensor Apply(const torch::Tensor& x) const;
  // T^T y along the last dimension (the inverse).
  torch::Tensor ApplyTransposed(const torch::Tensor& y) const;

 private:
  torch::Tensor Fwht(const torch::Tensor& x) const;  // blockwise Had_b x / sqrt(b)
  int64_t n_, block_;
  uint64_t seed_;
  torch::Tensor signs_;  // float32 [n]
};

}  // namespace fedlora::compress

#endif  // FEDLORA_COMPRESS_HADAMARD_H_
