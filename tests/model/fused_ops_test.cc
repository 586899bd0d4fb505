// The fused kernels (model/fused_ops.h) against libtorch's reference ops: values and gradients
// of random inputs, odd sizes (not a multiple of any vector width) included.
#include "fedlora/model/fused_ops.h"

#include <torch/types.h>
#include <torch/utils.h>
#include <torch/autograd.h>
#include <torch/nn/functional/loss.h>

#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace fedlora::model {
namespace {

torch::Tensor Leaf(std::vector<int64_t> shape, double scale = 1.0) {
  return (torch::randn(shape) * scale).requires_grad_(true);
}

// Gradients of sum(out * probe) with respect to `inputs`.
std::vector<torch::Tensor> Grads(const torch::Tensor& out, const torch::Tensor& probe,
                                 const std::vector<torch::Tensor>& inputs) {
  return torch::autograd::grad({(out * probe).sum()}, inputs);
}

void ExpectClose(const torch::Tensor& a, const torch::Tensor& b, double atol, const char* what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double diff = (a - b).abs().max().item<double>();
  EXPECT_LE(diff, atol) << what << ": max |difference| " << diff;
}

torch::Tensor RmsNormReference(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  return w * (x * torch::rsqrt(x.pow(2).mean(-1, true) + eps));
}

TEST(FusedOpsTest, RmsNormMatchesReferenceValuesAndGradients) {
  torch::manual_seed(1);
  for (int64_t d : {7, 64, 131}) {
    torch::Tensor x = Leaf({3, 5, d}, 2.0), w = Leaf({d});
    torch::Tensor probe = torch::randn({3, 5, d});
    torch::Tensor ref = RmsNormReference(x, w, 1e-5);
    torch::Tensor got = FusedRmsNorm(x, w, 1e-5);
    ExpectClose(got, ref, 1e-5, "rmsnorm values");
    auto gr = Grads(ref, probe, {x, w});
    auto gg = Grads(got, probe, {x, w});
    ExpectClose(gg[0], gr[0], 1e-4, "rmsnorm d/dx");
    ExpectClose(gg[1], gr[1], 1e-3, "rmsnorm d/dweight");
  }
  // A frozen weight gets no gradient; the input still does.
  torch::Tensor x = Leaf({4, 16}), w = torch::randn({16});
  torch::Tensor y = FusedRmsNorm(x, w, 1e-6);
  y.sum().backward();
  EXPECT_TRUE(x.grad().defined());
  EXPECT_FALSE(w.grad().defined());
  EXPECT_THROW(FusedRmsNorm(x, torch::randn({15}), 1e-6), c10::Error);
}

torch::Tensor RopeReference(const torch::Tensor& x, const torch::Tensor& cos,
                            const torch::Tensor& sin) {
  // x [N, T, H, D], cos/sin [T, D] -> broadcast over N and H.
  const int64_t half = x.size(3) / 2;
  torch::Tensor rot = torch::cat({-x.narrow(3, half, half), x.narrow(3, 0, half)}, 3);
  return x * cos.unsqueeze(1) + rot * sin.unsqueeze(1);
}

TEST(FusedOpsTest, RopeMatchesReferenceValuesAndGradients) {
  torch::manual_seed(2);
  for (int64_t d : {8, 64, 18}) {
    const int64_t n = 2, t = 5, h = 3;
    torch::Tensor x = Leaf({n, t, h, d});
    torch::Tensor freqs = torch::rand({t, d / 2}) * 3;
    torch::Tensor emb = torch::cat({freqs, freqs}, -1);
    torch::Tensor cos = emb.cos(), sin = emb.sin();
    torch::Tensor probe = torch::randn({n, t, h, d});
    torch::Tensor ref = RopeReference(x, cos, sin);
    torch::Tensor got = FusedRope(x, cos, sin);
    ExpectClose(got, ref, 1e-6, "rope values");
    ExpectClose(Grads(got, probe, {x})[0], Grads(ref, probe, {x})[0], 1e-5, "rope d/dx");
  }
  // A rotation keeps norms: a check that does not rely on the reference.
  torch::Tensor x = torch::randn({1, 4, 2, 16});
  torch::Tensor freqs = torch::rand({4, 8});
  torch::Tensor emb = torch::cat({freqs, freqs}, -1);
  torch::Tensor y = FusedRope(x, emb.cos(), emb.sin());
  ExpectClose(y.norm(2, -1), x.norm(2, -1), 1e-5, "rope preserves norms");
  EXPECT_THROW(FusedRope(x, emb.cos().narrow(0, 0, 3), emb.sin().narrow(0, 0, 3)), c10::Error);
}

TEST(FusedOpsTest, SwiGluMatchesReferenceValuesAndGradients) {
  torch::manual_seed(3);
  torch::Tensor g = Leaf({4, 7, 37}, 3.0), u = Leaf({4, 7, 37});
  {
    // The kernel forms the sigmoid itself: saturated gates must give silu 0 and g exactly.
    torch::NoGradGuard ng;
    g[0][0].narrow(0, 0, 8).copy_(
        torch::tensor({-1e4f, -200.0f, -90.0f, -30.0f, 30.0f, 90.0f, 200.0f, 1e4f}));
  }
  torch::Tensor probe = torch::randn({4, 7, 37});
  torch::Tensor ref = torch::silu(g) * u;
  torch::Tensor got = FusedSwiGlu(g, u);
  ExpectClose(got, ref, 1e-5, "swiglu values");
  auto gr = Grads(ref, probe, {g, u});
  auto gg = Grads(got, probe, {g, u});
  ExpectClose(gg[0], gr[0], 1e-5, "swiglu d/dgate");
  ExpectClose(gg[1], gr[1], 1e-5, "swiglu d/dup");
  EXPECT_THROW(FusedSwiGlu(g, torch::randn({4, 7, 36})), c10::Error);
  // A NaN gate gives NaN there and leaves the rest alone, so the trainer's check still fires.
  torch::Tensor gn = g.detach().clone();
  gn[1][2][3] = std::numeric_limits<float>::quiet_NaN();
  torch::Tensor yn = FusedSwiGlu(gn, u.detach());
  EXPECT_TRUE(std::isnan(yn[1][2][3].item<float>()));
  EXPECT_EQ(torch::isnan(yn).sum().item<int64_t>(), 1);
}

// softmax(scale q k^T + mask) v with libtorch's ops, heads repeated for grouped queries.
torch::Tensor AttentionReference(const torch::Tensor& q, const torch::Tensor& k,
                                 const torch::Tensor& v, const torch::Tensor& mask,
                                 double scale) {
  const int64_t n = q.size(0), t = q.size(1), h = q.size(2), d = q.size(3);
  const int64_t rep = h / k.size(2);
  torch::Tensor qh = q.transpose(1, 2);                                 // [N, H, T, D]
  torch::Tensor kh = k.transpose(1, 2).repeat_interleave(rep, 1);
  torch::Tensor vh = v.transpose(1, 2).repeat_interleave(rep, 1);
  torch::Tensor m = mask.reshape({-1, 1, t, t});
  torch::Tensor p = torch::softmax(torch::matmul(qh, kh.transpose(2, 3)) * scale + m, -1);
  return torch::matmul(p, vh).transpose(1, 2).reshape({n, t, h * d});
}

// Causal masks shared by the batch and per window (padding), grouped-query heads, odd sizes;
// windows longer than the kernel's 32-row blocks, where it skips the keys a whole block of
// queries may not see: causal, a full (unmasked) window, and a block that sees fewer keys
// than the block before it.
TEST(FusedOpsTest, AttentionMatchesReferenceValuesAndGradients) {
  ASSERT_TRUE(FusedAttentionAvailable());
  torch::manual_seed(3);
  const float neg = -std::numeric_limits<float>::infinity();
  enum Kind { kCausal, kPadded, kFull, kShortMiddle };
  struct Case {
    int64_t n, t, h, kv, d;
    Kind kind;
  };
  for (const Case& c : {Case{2, 7, 4, 4, 8, kCausal}, Case{3, 13, 6, 2, 5, kPadded},
                        Case{1, 32, 2, 1, 16, kCausal}, Case{2, 77, 4, 2, 8, kCausal},
                        Case{3, 45, 2, 2, 8, kPadded}, Case{2, 40, 2, 1, 8, kFull},
                        Case{1, 100, 2, 2, 8, kShortMiddle}}) {
    SCOPED_TRACE(testing::Message() << "t=" << c.t << " kind=" << c.kind);
    torch::Tensor q = Leaf({c.n, c.t, c.h, c.d}), k = Leaf({c.n, c.t, c.kv, c.d});
    torch::Tensor v = Leaf({c.n, c.t, c.kv, c.d});
    torch::Tensor causal = torch::ones({c.t, c.t}).triu(1).to(torch::kBool);
    torch::Tensor mask;
    if (c.kind == kPadded) {
      // Window 1 also hides its first two keys from every later query (padding).
      torch::Tensor hide = causal.unsqueeze(0).repeat({c.n, 1, 1});
      hide[1].narrow(1, 0, 2).narrow(0, 2, c.t - 2).fill_(true);
      mask = torch::zeros({c.n, 1, c.t, c.t}).masked_fill(hide.unsqueeze(1), neg);
    } else if (c.kind == kFull) {
      mask = torch::zeros({c.t, c.t});
    } else {
      if (c.kind == kShortMiddle) causal.narrow(0, 32, 32).narrow(1, 6, c.t - 6).fill_(true);
      mask = torch::zeros({1, 1, c.t, c.t}).masked_fill(causal, neg);
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
    torch::Tensor probe = torch::randn({c.n, c.t, c.h * c.d});
    torch::Tensor ref = AttentionReference(q, k, v, mask, scale);
    torch::Tensor got = FusedAttention(q, k, v, mask, scale);
    ExpectClose(got, ref, 1e-5, "attention values");
    auto gr = Grads(ref, probe, {q, k, v});
    auto gg = Grads(got, probe, {q, k, v});
    ExpectClose(gg[0], gr[0], 1e-4, "attention d/dq");
    ExpectClose(gg[1], gr[1], 1e-4, "attention d/dk");
    ExpectClose(gg[2], gr[2], 1e-4, "attention d/dv");
  }
  // Shapes that do not fit are refused with a message, not read out of bounds.
  torch::Tensor q = torch::randn({1, 4, 3, 8}), k = torch::randn({1, 4, 2, 8});
  EXPECT_THROW(FusedAttention(q, k, k, torch::zeros({4, 4}), 1.0), c10::Error);
  EXPECT_THROW(FusedAttention(q, q, q, torch::zeros({5, 5}), 1.0), c10::Error);
}

TEST(FusedOpsTest, LinearCrossEntropyMatchesReferenceInEveryChunking) {
  torch::manual_seed(4);
  const int64_t m = 23, d = 16, v = 301;
  torch::Tensor w = torch::randn({v, d}) * 0.3;
  torch::Tensor targets = torch::randint(0, v, {m}, torch::kInt64);
  targets[3] = -100;
  targets[17] = -100;
  torch::Tensor weights = torch::rand({m});  // per-row upstream gradients
  torch::Tensor h_ref = Leaf({m, d});
  torch::Tensor ref = torch::nn::functional::cross_entropy(
      at::linear(h_ref, w), targets,
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone).ignore_index(
          -100));
  (ref * weights).sum().backward();
  for (int64_t chunk : {1, 5, 23, 64}) {
    torch::Tensor h = h_ref.detach().clone().requires_grad_(true);
    torch::Tensor got = FusedLinearCrossEntropy(h, w, targets, chunk);
    ExpectClose(got, ref.detach(), 2e-5, "nll values");
    EXPECT_EQ(got[3].item<float>(), 0.0f);
    (got * weights).sum().backward();
    ExpectClose(h.grad(), h_ref.grad(), 2e-5, "nll d/dhidden");
    EXPECT_EQ(h.grad()[17].abs().sum().item<float>(), 0.0f) << "an ignored row has no gradient";
  }
  // Without grad it only scores; a trainable LM head is refused with a hint.
  {
    torch::NoGradGuard ng;
    ExpectClose(FusedLinearCrossEntropy(h_ref, w, targets), ref.detach(), 2e-5, "no-grad");
  }
  torch::Tensor trainable = w.clone().requires_grad_(true);
  EXPECT_THROW(FusedLinearCrossEntropy(h_ref, trainable, targets), c10::Error);
  // A target outside the vocabulary is refused, not read out of bounds.
  torch::Tensor bad = targets.clone();
  bad[5] = v;
  EXPECT_THROW(FusedLinearCrossEntropy(h_ref, w, bad), c10::Error);
}

}  // namespace
}  // namespace fedlora::model
