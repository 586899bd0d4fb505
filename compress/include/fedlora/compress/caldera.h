// CALDERA (Saha et al., NeurIPS 2024): W ≈ Q + L R with Q quantized by LDLQ/GPTQ and the
// low-rank factors L [out, k], R [k, in] fitted to the Hessian-weighted residual and quantized.
#ifndef FEDLORA_COMPRESS_CALDERA_H_
#define FEDLORA_COMPRESS_CALDERA_H_

#include <memory>

#include "absl/status/statusor.h"
#include "fedlora/compress/composite.h"

namespace fedlora::compress {

struct CalderaOptions {
  int rank = 16;
  int q_bits = 2;
  int q_group = 64;
  int lr_bits = 4;  // 4 or 8 (any 1..8 works)
  int lr_group = 64;
  int iterations = 3;
  double damp = 0.01;
  // Incoherence processing: quantize W T^T against T H T^T for a RandomHadamard T over the
  // input dimension (seed below); the result applies T to its input.
  bool hadamard = false;
  uint64_t hadamard_seed = 0x5eed;
};

// Alternates, `iterations` times: Q = LDLQ(W - L R) on the RTN grid (q_bits, q_group); then
// the rank-k minimiser of ||(W - Q - L R) H^{1/2}||_F (SVD of (W - Q) H^{1/2}), R quantized by
// LDLQ against H, L refitted to the quantized R (least squares in the H norm) and quantized by
// LDLQ against R H R^T. Keeps the iterate with the smallest tr(E H E^T); writes it to `error`
// when non-null. Errors as GptqQuantize.
absl::StatusOr<std::shared_ptr<LowRankWeight>> CalderaQuantize(const torch::Tensor& w,
                                                               const torch::Tensor& h,
                                                               const CalderaOptions& options,
                                                               double* error = nullptr);

}  // namespace fedlora::compress

#endif  // FEDLORA_COMPRESS_CALDERA_H_
