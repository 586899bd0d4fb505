// Float32 matrix products with a frozen weight: the base model's projections and LM head,
// forward (x W^T) and input gradient (dy W). These are most of a training step's arithmetic.
//
// Where the calling thread runs its products alone (a training shard, a simulated device: the
// trainer sets OpenBLAS to one thread there) and oneDNN has its brgemm kernels for the shape
// (AVX-512 and newer), the product runs on oneDNN: 8-16% faster than OpenBLAS 0.3.21's
// single-threaded SGEMM at a shard's shapes on an AVX-512 EPYC, and a sharded training step
// 5-12% faster (bench_model's `_openblas` twin rows; docs/device.md). Everywhere else it runs on
// OpenBLAS through libtorch, as before: oneDNN's non-brgemm float kernels (AVX2) were slower
// than OpenBLAS at some of these shapes, and a product spread over OpenMP threads spins against
// OpenBLAS's own threads (compress/src/int8_matmul.cc). The choice depends only on the
// machine, the shape and the thread setting, never on timing, so a seeded run repeats itself
// on the same machine.
#ifndef FEDLORA_MODEL_FLOAT_GEMM_H_
#define FEDLORA_MODEL_FLOAT_GEMM_H_

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace fedlora::model {

enum class FloatGemm {
  kAuto,      // oneDNN where it has brgemm kernels and the thread runs alone, else OpenBLAS
  kOpenBlas,  // always OpenBLAS (libtorch's mm)
};

// Process-wide; the default is what FEDLORA_FLOAT_GEMM names (read once, at the first
// product): unset or "auto" kAuto, "openblas" kOpenBlas; any other value makes the first
// product throw ParseFloatGemm's error.
void SetFloatGemm(FloatGemm g);
// "auto" or "openblas"; INVALID_ARGUMENT naming the value and the choices otherwise.
absl::StatusOr<FloatGemm> ParseFloatGemm(std::string_view name);
FloatGemm GetFloatGemm();

// True when a product of these sizes would run on oneDNN from the calling thread now: a
// [m, k] x [k, n] product, `w_transposed` as below.
bool FloatGemmUsesOneDnn(int64_t m, int64_t k, int64_t n, bool w_transposed);

// One line for logs and bench reports: "onednn brgemm on single-threaded shards, openblas
// otherwise", or "openblas (...)" saying why.
std::string FloatGemmDescription();

// out [m, n] = a [m, k] W^T with W [n, k] (w_transposed), or a [m, k] W with W [k, n].
// float32 throughout; `out` must be contiguous and of that shape (it is overwritten). Errors
// (wrong dtype or shape) are thrown as c10::Error naming the sizes.
void FrozenGemmOut(const torch::Tensor& a, const torch::Tensor& w, bool w_transposed,
                   torch::Tensor& out);

// The same into a fresh tensor; `a` may have leading dimensions ([..., k] -> [..., n]).
torch::Tensor FrozenGemm(const torch::Tensor& a, const torch::Tensor& w, bool w_transposed);

}  // namespace fedlora::model

#endif  // FEDLORA_MODEL_FLOAT_GEMM_H_
