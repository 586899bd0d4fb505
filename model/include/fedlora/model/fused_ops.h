// Fused forward + backward kernels for the decoder's non-GEMM work and attention
// (docs/device.md, "Where training time goes"). Each is one autograd node with a hand-written
// backward in place of the 3-10 libtorch ops (and their temporaries) it replaces; values and
// gradients match libtorch's reference ops to float32 rounding (tests/model/fused_ops_test.cc).
#ifndef FEDLORA_MODEL_FUSED_OPS_H_
#define FEDLORA_MODEL_FUSED_OPS_H_

#include <torch/types.h>

namespace fedlora::model {

// Whether LlamaModel and the trainer use these kernels (default) or libtorch's reference ops;
// process-wide, for benchmarks that compare both in one run (bench_model).
void SetFusedKernels(bool enabled);
bool FusedKernelsEnabled();

// y = weight * x / sqrt(mean(x^2, -1) + eps) over the last dimension. x: [..., d] float32,
// weight: [d]. Gradients for x and (when it requires grad) weight.
torch::Tensor FusedRmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// Rotary position embedding on x: [N, T, H, D] (contiguous): x * cos + rotate_half(x) * sin,
// cos/sin: [T, D] (contiguous, one row per position of x's T axis).
torch::Tensor FusedRope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// silu(gate) * up, elementwise (same shapes, float32). The sigmoid is formed in the kernel and
// formed again in backward from gate, so only gate and up are kept for backward.
torch::Tensor FusedSwiGlu(const torch::Tensor& gate, const torch::Tensor& up);

// Next-token negative log-likelihood of `targets` [M] (int64; -100 = ignored, scores 0) under
// logits = hidden [M, d] x weight^T [V, d], without materializing all M x V logits: rows go
// in chunks of `chunk`, and when hidden requires grad the gradient of each row's loss with
// respect to hidden is formed in the same pass (the logits' softmax minus one-hot, times
// weight) and scaled by the incoming gradient in backward. weight must not require grad (a
// frozen LM head); use the unfused path to train it. A target outside [0, V) other than -100
// is refused. Returns [M].
torch::Tensor FusedLinearCrossEntropy(const torch::Tensor& hidden, const torch::Tensor& weight,
                                      const torch::Tensor& targets, int64_t chunk = 256);

// Attention for training on the projections' layout: q [N, T, H, D], k and v [N, T, KV, D]
// (H a multiple of KV: grouped-query heads share keys and values), `mask` additive, [T, T] or
// [N, T, T] with any leading ones (-inf where a query may not look); returns
// softmax(scale q k^T + mask) v as [N, T, H * D]. Each head's products call the BLAS directly
// with strides that skip the other heads (no per-head transposes, copies or slices); the
// backward pass (gradients for q, k, v) fuses the softmax backward between its products.
// Queries go in blocks of 32 rows; keys that the mask hides (-inf) from every row of a block,
// from some column to the end, are left out of that block's products (exact: their weight is
// 0), so a causal mask costs a little over half of the full products.
// Every query row must allow at least one key. Needs cblas_sgemm in the loaded BLAS
// (FusedAttentionAvailable; libtorch's OpenBLAS has it).
torch::Tensor FusedAttention(const torch::Tensor& q, const torch::Tensor& k,
                             const torch::Tensor& v, const torch::Tensor& mask, double scale);
bool FusedAttentionAvailable();

}  // namespace fedlora::model

#endif  // FEDLORA_MODEL_FUSED_OPS_H_
