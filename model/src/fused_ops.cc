#include "fedlora/model/fused_ops.h"

#include <torch/types.h>
#include <torch/autograd.h>

#include <atomic>
#include <cmath>
#include <limits>

#include "fedlora/common/simd.h"
#include "fedlora/model/float_gemm.h"
#include "exp_rows.h"
#include "fast_exp.h"

namespace fedlora::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The row loops are multi-versioned (FEDLORA_SIMD, fedlora/common/simd.h); `omp simd` lets
// the reductions vectorize (-fopenmp-simd).

FEDLORA_SIMD void RmsNormRows(const float* x, const float* w, float* y, float* rstd,
                              int64_t rows, int64_t d, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    float* yr = y + r * d;
    float ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < d; ++j) ss += xr[j] * xr[j];
    const float rs = 1.0f / std::sqrt(ss / static_cast<float>(d) + eps);
    rstd[r] = rs;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) yr[j] = w[j] * (xr[j] * rs);
  }
}

// dx = rs * (g - x * rs * dot), g = dy * w, dot = rs * sum(g * x) / d; dw += dy * x * rs.
FEDLORA_SIMD void RmsNormBackwardRows(const float* x, const float* w, const float* rstd,
                                      const float* dy, float* dx, float* dw, int64_t rows,
                                      int64_t d) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    const float* dyr = dy + r * d;
    float* dxr = dx + r * d;
    const float rs = rstd[r];
    float gx = 0;
#pragma omp simd reduction(+ : gx)
    for (int64_t j = 0; j < d; ++j) gx += dyr[j] * w[j] * xr[j];
    const float k = rs * rs * gx / static_cast<float>(d);
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) dxr[j] = rs * (dyr[j] * w[j] - xr[j] * k);
    if (dw != nullptr) {
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) dw[j] += dyr[j] * xr[j] * rs;
    }
  }
}

// out = x * cos + rotate_half(x) * sin over rows of D (sign = +1); the backward is the same
// loop with the transposed rotation (sign = -1): dx = dy * cos + rotate_half^T(dy * sin).
FEDLORA_SIMD void RopeRows(const float* x, const float* cos, const float* sin, float* out,
                           int64_t n, int64_t t, int64_t h, int64_t d, float sign) {
  const int64_t half = d / 2;
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t p = 0; p < t; ++p) {
      const float* c = cos + p * d;
      const float* s = sin + p * d;
      for (int64_t head = 0; head < h; ++head) {
        const int64_t off = ((b * t + p) * h + head) * d;
        const float* xr = x + off;
        float* o = out + off;
        if (sign > 0) {
#pragma omp simd
          for (int64_t j = 0; j < half; ++j) o[j] = xr[j] * c[j] - xr[j + half] * s[j];
#pragma omp simd
          for (int64_t j = half; j < d; ++j) o[j] = xr[j] * c[j] + xr[j - half] * s[j];
        } else {
#pragma omp simd
          for (int64_t j = 0; j < half; ++j) {
            o[j] = xr[j] * c[j] + xr[j + half] * s[j + half];
          }
#pragma omp simd
          for (int64_t j = half; j < d; ++j) o[j] = xr[j] * c[j] - xr[j - half] * s[j - half];
        }
      }
    }
  }
}

// sigmoid(g) with the vectorizable exp (fast_exp.h); exp(-g) overflows to a large finite
// value for very negative g, so s -> 0 as it should.
inline float SigmoidForSimd(float g) { return 1.0f / (1.0f + internal::ExpForSimd(-g)); }

// y = silu(g) * u, the sigmoid formed in the same pass (nothing kept for backward but g, u).
FEDLORA_SIMD void SwiGluForward(const float* g, const float* u, float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = g[i] * SigmoidForSimd(g[i]) * u[i];
}

// d/dg silu(g) = s * (1 + g * (1 - s)), s = sigmoid(g) recomputed from g.
FEDLORA_SIMD void SwiGluBackward(const float* g, const float* u, const float* dy, float* dg,
                                 float* du, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float s = SigmoidForSimd(g[i]);
    const float silu = g[i] * s;
    dg[i] = dy[i] * u[i] * (s + silu * (1.0f - s));
    du[i] = dy[i] * silu;
  }
}

void CheckFloat(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(t.scalar_type() == torch::kFloat, what, " must be float32, got ", t.scalar_type());
}

struct RmsNormFn : public torch::autograd::Function<RmsNormFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& w_in, double eps) {
    const torch::Tensor x = x_in.contiguous();
    const torch::Tensor w = w_in.contiguous();
    const int64_t d = x.size(-1);
    TORCH_CHECK(w.numel() == d, "FusedRmsNorm: weight has ", w.numel(), " values for rows of ",
                d);
    torch::Tensor y = torch::empty_like(x);
    torch::Tensor rstd = torch::empty({x.numel() / d}, x.options());
    RmsNormRows(x.data_ptr<float>(), w.data_ptr<float>(), y.data_ptr<float>(),
                rstd.data_ptr<float>(), rstd.numel(), d, static_cast<float>(eps));
    ctx->save_for_backward({x, w, rstd});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& w = saved[1];
    const torch::Tensor& rstd = saved[2];
    const torch::Tensor dy = grads[0].contiguous();
    const int64_t d = x.size(-1);
    torch::Tensor dx = torch::empty_like(x);
    torch::Tensor dw;
    if (ctx->needs_input_grad(1)) dw = torch::zeros({d}, x.options());
    RmsNormBackwardRows(x.data_ptr<float>(), w.data_ptr<float>(), rstd.data_ptr<float>(),
                        dy.data_ptr<float>(), dx.data_ptr<float>(),
                        dw.defined() ? dw.data_ptr<float>() : nullptr, rstd.numel(), d);
    if (dw.defined()) dw = dw.view(saved[1].sizes());
    return {dx, dw, torch::Tensor()};
  }
};

struct RopeFn : public torch::autograd::Function<RopeFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& cos, const torch::Tensor& sin) {
    const torch::Tensor x = x_in.contiguous();
    torch::Tensor out = torch::empty_like(x);
    RopeRows(x.data_ptr<float>(), cos.data_ptr<float>(), sin.data_ptr<float>(),
             out.data_ptr<float>(), x.size(0), x.size(1), x.size(2), x.size(3), 1.0f);
    ctx->save_for_backward({cos, sin});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor dy = grads[0].contiguous();
    torch::Tensor dx = torch::empty_like(dy);
    RopeRows(dy.data_ptr<float>(), saved[0].data_ptr<float>(), saved[1].data_ptr<float>(),
             dx.data_ptr<float>(), dy.size(0), dy.size(1), dy.size(2), dy.size(3), -1.0f);
    return {dx, torch::Tensor(), torch::Tensor()};
  }
};

struct SwiGluFn : public torch::autograd::Function<SwiGluFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& g_in,
                               const torch::Tensor& u_in) {
    const torch::Tensor g = g_in.contiguous();
    const torch::Tensor u = u_in.contiguous();
    TORCH_CHECK(g.sizes() == u.sizes(), "FusedSwiGlu: gate ", g.sizes(), " and up ", u.sizes(),
                " differ");
    torch::Tensor y = torch::empty_like(g);
    SwiGluForward(g.data_ptr<float>(), u.data_ptr<float>(), y.data_ptr<float>(), g.numel());
    ctx->save_for_backward({g, u});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor dy = grads[0].contiguous();
    torch::Tensor dg = torch::empty_like(dy), du = torch::empty_like(dy);
    SwiGluBackward(saved[0].data_ptr<float>(), saved[1].data_ptr<float>(), dy.data_ptr<float>(),
                   dg.data_ptr<float>(), du.data_ptr<float>(), dy.numel());
    return {dg, du};
  }
};

// Per row of logits [rows, vocab]: nll = logsumexp - logit[target] (0 where the target is
// -100), in three passes over the row; with_grad turns the row into d nll / d logits
// (softmax minus one-hot, 0 for an ignored row) in place.
FEDLORA_SIMD void CrossEntropyRows(float* logits, const int64_t* targets, float* nll,
                                   int64_t rows, int64_t vocab, bool with_grad) {
  for (int64_t r = 0; r < rows; ++r) {
    float* x = logits + r * vocab;
    const int64_t t = targets[r];
    const bool valid = t != -100;  // else in [0, vocab): checked by FusedLinearCrossEntropy
    const float target_logit = valid ? x[t] : 0.0f;
    float mx;
    const float sum = internal::ExpMinusMaxInPlace(x, vocab, &mx);
    nll[r] = valid ? std::log(sum) + mx - target_logit : 0.0f;
    if (!with_grad) continue;
    const float inv = valid ? 1.0f / sum : 0.0f;
#pragma omp simd
    for (int64_t j = 0; j < vocab; ++j) x[j] *= inv;
    if (valid) x[t] -= 1.0f;
  }
}

struct LinearCrossEntropyFn : public torch::autograd::Function<LinearCrossEntropyFn> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& hidden,
                               const torch::Tensor& weight, const torch::Tensor& targets,
                               int64_t chunk, bool with_grad) {
    const int64_t m = hidden.size(0);
    torch::Tensor nll = torch::empty({m}, hidden.options());
    torch::Tensor grad_h = with_grad ? torch::empty_like(hidden) : torch::Tensor();
    const torch::Tensor tg = targets.contiguous();
    const int64_t* tp = tg.data_ptr<int64_t>();
    float* np = nll.data_ptr<float>();
    const int64_t vocab = weight.size(0);
    for (int64_t a = 0; a < m; a += chunk) {
      const int64_t c = std::min(chunk, m - a);
      torch::Tensor logits = torch::empty({c, vocab}, hidden.options());
      FrozenGemmOut(hidden.narrow(0, a, c), weight, /*w_transposed=*/true, logits);  // [c, V]
      CrossEntropyRows(logits.data_ptr<float>(), tp + a, np + a, c, vocab, with_grad);
      // softmax - one_hot(target), rows of ignored targets 0, times the head: d nll / d hidden.
      if (with_grad) {
        torch::Tensor rows = grad_h.narrow(0, a, c);
        FrozenGemmOut(logits, weight, /*w_transposed=*/false, rows);
      }
    }
    if (with_grad) ctx->save_for_backward({grad_h});
    return nll;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    torch::Tensor dh;
    if (saved.size() == 1 && saved[0].defined()) dh = saved[0] * grads[0].unsqueeze(1);
    return {dh, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

std::atomic<bool> g_fused{true};

}  // namespace

void SetFusedKernels(bool enabled) { g_fused.store(enabled); }
bool FusedKernelsEnabled() { return g_fused.load(std::memory_order_relaxed); }

torch::Tensor FusedRmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  CheckFloat(x, "FusedRmsNorm input");
  CheckFloat(weight, "FusedRmsNorm weight");
  return RmsNormFn::apply(x, weight, eps);
}

torch::Tensor FusedRope(const torch::Tensor& x, const torch::Tensor& cos,
                        const torch::Tensor& sin) {
  CheckFloat(x, "FusedRope input");
  TORCH_CHECK(x.dim() == 4 && x.size(3) % 2 == 0, "FusedRope: x must be [N, T, H, D], D even");
  TORCH_CHECK(cos.dim() == 2 && cos.size(0) == x.size(1) && cos.size(1) == x.size(3) &&
                  sin.sizes() == cos.sizes(),
              "FusedRope: cos/sin must be [T, D] = [", x.size(1), ", ", x.size(3), "], got ",
              cos.sizes());
  return RopeFn::apply(x, cos.contiguous(), sin.contiguous());
}

torch::Tensor FusedSwiGlu(const torch::Tensor& gate, const torch::Tensor& up) {
  CheckFloat(gate, "FusedSwiGlu gate");
  CheckFloat(up, "FusedSwiGlu up");
  return SwiGluFn::apply(gate, up);
}

torch::Tensor FusedLinearCrossEntropy(const torch::Tensor& hidden, const torch::Tensor& weight,
                                      const torch::Tensor& targets, int64_t chunk) {
  CheckFloat(hidden, "FusedLinearCrossEntropy hidden");
  CheckFloat(weight, "FusedLinearCrossEntropy weight");
  TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1),
              "FusedLinearCrossEntropy: hidden ", hidden.sizes(), " and weight ", weight.sizes(),
              " do not multiply");
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == hidden.size(0) &&
                  targets.scalar_type() == torch::kInt64,
              "FusedLinearCrossEntropy: targets must be int64 [", hidden.size(0), "]");
  TORCH_CHECK(!weight.requires_grad(),
              "FusedLinearCrossEntropy: the LM head must be frozen (hint: train it through "
              "Logits() and cross_entropy)");
  TORCH_CHECK(chunk > 0, "FusedLinearCrossEntropy: chunk must be positive");
  const torch::Tensor scored = targets.masked_select(targets.ne(-100));
  TORCH_CHECK(scored.numel() == 0 ||
                  (scored.min().item<int64_t>() >= 0 &&
                   scored.max().item<int64_t>() < weight.size(0)),
              "FusedLinearCrossEntropy: a target is outside the vocabulary of ", weight.size(0),
              " (targets are token ids, or -100 to skip a position)");
  const bool with_grad = torch::autograd::GradMode::is_enabled() && hidden.requires_grad();
  return LinearCrossEntropyFn::apply(hidden.contiguous(), weight, targets, chunk, with_grad);
}

}  // namespace fedlora::model
