// Matrix products with an int8 weight through oneDNN's matmul (AMX, AVX-512 VNNI or AVX2
// kernels, picked by oneDNN at run time). Internal to fedlora_compress; the public face is
// fedlora/compress/int8_compute.h.
#ifndef FEDLORA_COMPRESS_SRC_INT8_MATMUL_H_
#define FEDLORA_COMPRESS_SRC_INT8_MATMUL_H_

#include <torch/types.h>

#include <cstdint>
#include <string>

namespace fedlora::compress::internal {

// The widest instruction set oneDNN runs int8 products on here, e.g. "avx512_core_amx";
// "" when it has nothing wider than SSE4.1 (int8 would not beat float32 there).
std::string Int8Isa();

// The largest weight code: 127 where oneDNN's int8 kernels add in 32 bits (VNNI, AMX), 63
// where they add pairs of products in 16 bits (AVX2, AVX-512 without VNNI), which would
// saturate with larger codes.
int WeightLevels();

// A weight W [N, K] held as int8 codes with one symmetric scale per row: W ~ diag(scale) Q.
class Int8Matrix {
 public:
  // Quantizes a float32 [N, K] weight, each row to WeightLevels() levels of its largest
  // magnitude.
  static Int8Matrix FromDense(const torch::Tensor& w);

  // x [M, K] -> x W^T [M, N]. Each row of x is quantized to int8 on its own scale, so a
  // small row keeps its precision next to a large one.
  torch::Tensor MulTransposed(const torch::Tensor& x) const;
  // dy [M, N] -> dy W [M, K] (the input gradient of MulTransposed). The row scales of W are
  // folded into dy before dy's rows are quantized, so no precision is lost to them.
  torch::Tensor Mul(const torch::Tensor& dy) const;

  int64_t rows() const { return codes_.size(0); }
  int64_t cols() const { return codes_.size(1); }
  int64_t bytes() const { return codes_.numel() + 4 * scales_.numel(); }
  const torch::Tensor& codes() const { return codes_; }
  const torch::Tensor& scales() const { return scales_; }

 private:
  torch::Tensor Product(const torch::Tensor& x, bool transposed) const;

  torch::Tensor codes_;   // int8 [N, K]
  torch::Tensor scales_;  // float32 [N]
};

}  // namespace fedlora::compress::internal

#endif  // FEDLORA_COMPRESS_SRC_INT8_MATMUL_H_
