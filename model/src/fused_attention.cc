// Multi-head attention for training, forward and backward, on the projections' own layout
// ([N, T, heads, D] in, [N, T, heads * D] out). Each head's products go straight to the BLAS
// (cblas_sgemm, resolved from the libblas libtorch loaded) with leading dimensions that step
// over the other heads, so nothing is transposed, copied or sliced per head; the additive mask
// is the scores GEMM's C input, and the softmax and its backward run between the products of
// each block of query rows. Keys that the mask hides from a whole block are left out of that
// block's products (KeyLimits).
#include <dlfcn.h>
#include <torch/types.h>
#include <torch/autograd.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "fedlora/common/simd.h"
#include "fedlora/model/fused_ops.h"
#include "exp_rows.h"

namespace fedlora::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// cblas_sgemm's signature and the CBLAS enum values it takes (cblas.h is not installed).
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*,
                         int, float, float*, int);
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

SgemmFn Sgemm() {
  static const SgemmFn fn = reinterpret_cast<SgemmFn>(dlsym(RTLD_DEFAULT, "cblas_sgemm"));
  return fn;
}

// C[m, n] = alpha * op(A) op(B) + beta * C, row-major with leading dimensions.
inline void Gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  Sgemm()(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, static_cast<int>(m),
          static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
          static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

// Query rows are handled in blocks of this many (see KeyLimits).
constexpr int64_t kRowBlock = 32;

// For each block of kRowBlock query rows of the [T, T] additive mask m: one past the last key
// that any row of the block may see. Keys from there on are -inf for the whole block, so their
// softmax weight is exactly 0 and their products are skipped (a causal mask: 37.5% of each
// product at 128 tokens, towards half for longer windows). At least 1: a row that sees no key
// comes out NaN, as in the reference.
std::vector<int64_t> KeyLimits(const float* m, int64_t t) {
  const float neg = -std::numeric_limits<float>::infinity();
  std::vector<int64_t> lims;
  for (int64_t r0 = 0; r0 < t; r0 += kRowBlock) {
    int64_t lim = 1;
    for (int64_t r = r0; r < std::min(t, r0 + kRowBlock); ++r) {
      int64_t j = t;
      while (j > lim && m[r * t + j - 1] == neg) --j;
      lim = j;
    }
    lims.push_back(lim);
  }
  return lims;
}

// softmax over the first `cols` entries of each of `rows` rows (leading dimension ld), in place.
FEDLORA_SIMD void SoftmaxRows(float* s, int64_t rows, int64_t cols, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) {
    float* x = s + r * ld;
    float mx;
    const float inv = 1.0f / internal::ExpMinusMaxInPlace(x, cols, &mx);
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) x[j] *= inv;
  }
}

// dS = P * (dP - rowsum(P * dP)), in place in dp, over the first `cols` of each row.
FEDLORA_SIMD void SoftmaxBackwardRows(const float* p, float* dp, int64_t rows, int64_t cols,
                                      int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* pr = p + r * ld;
    float* gr = dp + r * ld;
    float dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < cols; ++j) dot += pr[j] * gr[j];
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) gr[j] = pr[j] * (gr[j] - dot);
  }
}

// Entries of probs past a block's key limit are never written nor read.
struct AttentionFn : public torch::autograd::Function<AttentionFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q_in,
                               const torch::Tensor& k_in, const torch::Tensor& v_in,
                               const torch::Tensor& mask_in, double scale) {
    torch::Tensor q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
    torch::Tensor mask = mask_in.contiguous();
    const int64_t n = q.size(0), t = q.size(1), h = q.size(2), d = q.size(3), kv = k.size(2);
    const int64_t rep = h / kv, mask_n = mask.numel() / (t * t);
    torch::Tensor probs = torch::empty({n, h, t, t}, q.options());
    torch::Tensor out = torch::empty({n, t, h * d}, q.options());
    const float* qp = q.data_ptr<float>();
    const float* kp = k.data_ptr<float>();
    const float* vp = v.data_ptr<float>();
    const float* mp = mask.data_ptr<float>();
    float* pp = probs.data_ptr<float>();
    float* op = out.data_ptr<float>();
    std::vector<std::vector<int64_t>> lims(mask_n);
    for (int64_t b = 0; b < mask_n; ++b) lims[b] = KeyLimits(mp + b * t * t, t);
    for (int64_t b = 0; b < n; ++b) {
      const float* m = mp + (mask_n == 1 ? 0 : b) * t * t;
      const std::vector<int64_t>& lim = lims[mask_n == 1 ? 0 : b];
      for (int64_t hh = 0; hh < h; ++hh) {
        const float* kh = kp + b * t * kv * d + (hh / rep) * d;
        const float* vh = vp + b * t * kv * d + (hh / rep) * d;
        for (size_t blk = 0; blk < lim.size(); ++blk) {
          const int64_t r0 = static_cast<int64_t>(blk) * kRowBlock;
          const int64_t rows = std::min(kRowBlock, t - r0), cols = lim[blk];
          // scores = mask + scale q k^T (the mask is the GEMM's C input), softmax, then P V.
          float* s = pp + (b * h + hh) * t * t + r0 * t;
          for (int64_t r = 0; r < rows; ++r) {
            std::copy(m + (r0 + r) * t, m + (r0 + r) * t + cols, s + r * t);
          }
          Gemm(false, true, rows, cols, d, static_cast<float>(scale),
               qp + (b * t + r0) * h * d + hh * d, h * d, kh, kv * d, 1.0f, s, t);
          SoftmaxRows(s, rows, cols, t);
          Gemm(false, false, rows, d, cols, 1.0f, s, t, vh, kv * d, 0.0f,
               op + (b * t + r0) * h * d + hh * d, h * d);
        }
      }
    }
    ctx->save_for_backward({q, k, v, probs, mask});
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const torch::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &probs = saved[3];
    const torch::Tensor& mask = saved[4];
    const float scale = static_cast<float>(ctx->saved_data["scale"].toDouble());
    torch::Tensor dout = grads[0].contiguous();
    const int64_t n = q.size(0), t = q.size(1), h = q.size(2), d = q.size(3), kv = k.size(2);
    const int64_t rep = h / kv, mask_n = mask.numel() / (t * t);
    torch::Tensor dq = torch::empty_like(q), dk = torch::zeros_like(k), dv = torch::zeros_like(v);
    torch::Tensor scratch = torch::empty({kRowBlock, t}, q.options());
    const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
    const float *pp = probs.data_ptr<float>(), *gp = dout.data_ptr<float>();
    float *dqp = dq.data_ptr<float>(), *dkp = dk.data_ptr<float>(), *dvp = dv.data_ptr<float>();
    float* ds = scratch.data_ptr<float>();
    std::vector<std::vector<int64_t>> lims(mask_n);
    for (int64_t b = 0; b < mask_n; ++b) lims[b] = KeyLimits(mask.data_ptr<float>() + b * t * t, t);
    for (int64_t b = 0; b < n; ++b) {
      const std::vector<int64_t>& lim = lims[mask_n == 1 ? 0 : b];
      for (int64_t hh = 0; hh < h; ++hh) {
        const int64_t g = hh / rep;
        const float* kh = kp + b * t * kv * d + g * d;
        const float* vh = vp + b * t * kv * d + g * d;
        float* dkh = dkp + b * t * kv * d + g * d;
        float* dvh = dvp + b * t * kv * d + g * d;
        for (size_t blk = 0; blk < lim.size(); ++blk) {
          const int64_t r0 = static_cast<int64_t>(blk) * kRowBlock;
          const int64_t rows = std::min(kRowBlock, t - r0), cols = lim[blk];
          const float* p = pp + (b * h + hh) * t * t + r0 * t;
          const float* go = gp + (b * t + r0) * h * d + hh * d;
          const float* qh = qp + (b * t + r0) * h * d + hh * d;
          // dP = dO V^T; dV += P^T dO.
          Gemm(false, true, rows, cols, d, 1.0f, go, h * d, vh, kv * d, 0.0f, ds, t);
          Gemm(true, false, cols, d, rows, 1.0f, p, t, go, h * d, 1.0f, dvh, kv * d);
          SoftmaxBackwardRows(p, ds, rows, cols, t);
          // dQ = scale dS K; dK += scale dS^T Q.
          Gemm(false, false, rows, d, cols, scale, ds, t, kh, kv * d, 0.0f,
               dqp + (b * t + r0) * h * d + hh * d, h * d);
          Gemm(true, false, cols, d, rows, scale, ds, t, qh, h * d, 1.0f, dkh, kv * d);
        }
      }
    }
    return {dq, dk, dv, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool FusedAttentionAvailable() { return Sgemm() != nullptr; }

torch::Tensor FusedAttention(const torch::Tensor& q, const torch::Tensor& k,
                             const torch::Tensor& v, const torch::Tensor& mask, double scale) {
  TORCH_CHECK(FusedAttentionAvailable(), "FusedAttention: the loaded BLAS has no cblas_sgemm");
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.sizes() == k.sizes(),
              "FusedAttention: q [N, T, H, D], k and v [N, T, KV, D]");
  TORCH_CHECK(q.size(0) == k.size(0) && q.size(1) == k.size(1) && q.size(3) == k.size(3) &&
                  q.size(2) % k.size(2) == 0,
              "FusedAttention: k, v must match q's batch, length and head size, with a number "
              "of heads that divides q's");
  TORCH_CHECK(q.scalar_type() == torch::kFloat && k.scalar_type() == torch::kFloat &&
                  v.scalar_type() == torch::kFloat && mask.scalar_type() == torch::kFloat,
              "FusedAttention: float32 only");
  const int64_t t = q.size(1);
  TORCH_CHECK(mask.numel() == t * t || mask.numel() == q.size(0) * t * t,
              "FusedAttention: the mask must be [T, T] or [N, T, T] (any leading ones)");
  return AttentionFn::apply(q, k, v, mask, scale);
}

}  // namespace fedlora::model
