// GPTQ / LDLQ (Frantar et al. 2023; Chee et al. 2023): quantize a weight column by column on
// the RTN grid, feeding each column's rounding error forward to the not yet quantized columns
// through the Cholesky factor of the inverse calibration Hessian H = X X^T.
#ifndef FEDLORA_COMPRESS_GPTQ_H_
#define FEDLORA_COMPRESS_GPTQ_H_

#include <memory>

#include "absl/status/statusor.h"
#include "fedlora/compress/rtn.h"

namespace fedlora::compress {

struct GptqOptions {
  int bits = 4;
  int group = 64;      // RTN group (columns); the grid of a group is fixed at its first column
  int block = 128;     // lazy-batch block (rounded up to a multiple of group)
  double damp = 0.01;  // added to H's diagonal: damp * mean(diag(H))
};

// Quantizes float [out, in] `w` given `h` ([in, in], symmetric positive semi-definite).
// When `mask` (bool [out, in]) is given, entries where it is false are quantized to exactly 0
// in the error feedback (the caller wraps the result in a MaskedWeight). Returns the RTN-format
// weight. INVALID_ARGUMENT for bad shapes / options; FAILED_PRECONDITION when H stays
// indefinite after raising the damping 6 times by 10x (hint given).
absl::StatusOr<std::shared_ptr<RtnWeight>> GptqQuantize(const torch::Tensor& w,
                                                        const torch::Tensor& h,
                                                        const GptqOptions& options,
                                                        const torch::Tensor& mask = {});

// tr((W - W') H (W - W')^T), in float64: the expected squared output error on the calibration
// inputs (up to their count).
double HessianError(const torch::Tensor& w, const torch::Tensor& w_hat, const torch::Tensor& h);

// Upper Cholesky factor of (H + damp * mean(diag H) * I)^-1, float64, with zero-diagonal
// (dead) inputs set to 1 on the diagonal. Raises damping up to 6 times if needed.
absl::StatusOr<torch::Tensor> InverseHessianFactor(const torch::Tensor& h, double damp);

}  // namespace fedlora::compress

#endif  // FEDLORA_COMPRESS_GPTQ_H_
