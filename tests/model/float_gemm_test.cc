// FrozenGemm and FrozenDenseLinear (model/float_gemm.h) against libtorch's mm and linear, on
// whichever library runs them here (oneDNN's brgemm on AVX-512 machines when the thread runs
// alone, OpenBLAS otherwise), in both directions, at odd and at training sizes.
#include "fedlora/model/float_gemm.h"

#include <torch/types.h>
#include <torch/utils.h>
#include <torch/autograd.h>

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "fedlora/model/frozen_weight.h"
#include "fedlora/model/threads.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::model {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

// Largest |a - b| over the scale of the exact product's terms (sum of |x||w|), so the bound is
// the same for every k: float32 accumulation error grows with k at worst linearly.
double RelativeError(const torch::Tensor& got, const torch::Tensor& a, const torch::Tensor& w,
                     bool w_transposed) {
  torch::Tensor wd = (w_transposed ? w.t() : w).to(torch::kDouble);
  torch::Tensor exact = torch::mm(a.reshape({-1, a.size(-1)}).to(torch::kDouble), wd);
  torch::Tensor scale = torch::mm(a.reshape({-1, a.size(-1)}).abs().to(torch::kDouble), wd.abs());
  return ((got.reshape(exact.sizes()).to(torch::kDouble) - exact).abs() / (scale + 1e-30))
      .max()
      .item<double>();
}

struct Shape {
  int64_t m, k, n;
};
const std::vector<Shape> kShapes = {{1, 5, 3},      {7, 63, 129},   {37, 256, 688},
                                    {256, 512, 512}, {128, 256, 2048}, {256, 1376, 512}};

TEST(FloatGemmTest, ProductsMatchDoublePrecisionOnEveryPath) {
  torch::manual_seed(3);
  for (int threads : {1, 0}) {  // a shard's single thread (oneDNN where it has kernels), then all
    std::optional<ScopedBlasThreads> single;
    if (threads == 1) single.emplace(1);
    for (const Shape& s : kShapes) {
      for (bool wt : {true, false}) {
        torch::Tensor a = torch::randn({s.m, s.k});
        torch::Tensor w = wt ? torch::randn({s.n, s.k}) : torch::randn({s.k, s.n});
        torch::Tensor y = FrozenGemm(a, w, wt);
        ASSERT_EQ(y.sizes(), (std::vector<int64_t>{s.m, s.n}));
        const double err = RelativeError(y, a, w, wt);
        EXPECT_LT(err, 1e-5) << s.m << "x" << s.k << "x" << s.n << (wt ? " W^T" : " W")
                             << " threads " << threads << " oneDNN "
                             << FloatGemmUsesOneDnn(s.m, s.k, s.n, wt);
      }
    }
  }
}

// Where this machine has oneDNN's brgemm kernels, a shard's products take them, and neither an
// OpenBLAS thread pool nor FloatGemm::kOpenBlas does; where it has none, nothing does.
TEST(FloatGemmTest, OneDnnRunsOnlyForSingleThreadedCallersAndCanBeTurnedOff) {
  const bool here = FloatGemmDescription().find("onednn") != std::string::npos;
  {
    ScopedBlasThreads single(1);
    EXPECT_EQ(FloatGemmUsesOneDnn(256, 512, 512, true), here);
    EXPECT_EQ(FloatGemmUsesOneDnn(256, 512, 512, false), here);
    SetFloatGemm(FloatGemm::kOpenBlas);
    EXPECT_FALSE(FloatGemmUsesOneDnn(256, 512, 512, true));
    EXPECT_THAT(FloatGemmDescription(), HasSubstr("openblas"));
    SetFloatGemm(FloatGemm::kAuto);
    EXPECT_FALSE(FloatGemmUsesOneDnn(0, 512, 512, true));
  }
  if (NumCores() > 1) {
    ScopedBlasThreads all(2);
    EXPECT_FALSE(FloatGemmUsesOneDnn(256, 512, 512, true));
  }
}

TEST(FloatGemmTest, LeadingDimensionsAndEmptyProducts) {
  torch::Tensor a = torch::randn({2, 3, 16}), w = torch::randn({24, 16});
  torch::Tensor y = FrozenGemm(a, w, true);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 3, 24}));
  EXPECT_LT(RelativeError(y, a, w, true), 1e-5);
  EXPECT_EQ(FrozenGemm(torch::randn({0, 16}), w, true).sizes(), (std::vector<int64_t>{0, 24}));
  // k = 0: the product is all zeros, as libtorch's.
  torch::Tensor z = FrozenGemm(torch::randn({4, 0}), torch::randn({5, 0}), true);
  EXPECT_EQ(z.sizes(), (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(z.abs().sum().item<float>(), 0.0f);
}

// A NaN in one input row makes that output row NaN and no other, on every path: the trainer's
// non-finite check depends on it.
TEST(FloatGemmTest, ANanRowStaysInItsRow) {
  for (int threads : {1, 0}) {
    std::optional<ScopedBlasThreads> single;
    if (threads == 1) single.emplace(1);
    torch::Tensor a = torch::randn({256, 512}), w = torch::randn({512, 512});
    a[5][7] = std::numeric_limits<float>::quiet_NaN();
    for (bool wt : {true, false}) {
      torch::Tensor y = FrozenGemm(a, w, wt);
      torch::Tensor bad = y.isnan().any(1);
      EXPECT_TRUE(bad[5].item<bool>()) << "threads " << threads;
      EXPECT_EQ(bad.sum().item<int64_t>(), 1) << "threads " << threads;
    }
  }
}

TEST(FloatGemmTest, DenseLinearMatchesLinearAndTrainsTheInputOnly) {
  torch::manual_seed(4);
  ScopedBlasThreads single(1);
  torch::Tensor x = torch::randn({2, 128, 512}).requires_grad_(true);
  torch::Tensor w = torch::randn({688, 512}) * 0.05;
  torch::Tensor probe = torch::randn({2, 128, 688});
  torch::Tensor y = FrozenDenseLinear(x, w);
  torch::Tensor dx = torch::autograd::grad({(y * probe).sum()}, {x})[0];
  torch::Tensor x2 = x.detach().clone().requires_grad_(true);
  torch::Tensor y2 = at::linear(x2, w);
  torch::Tensor dx2 = torch::autograd::grad({(y2 * probe).sum()}, {x2})[0];
  EXPECT_LT((y - y2).abs().max().item<double>(), 1e-4);
  EXPECT_LT((dx - dx2).abs().max().item<double>(), 1e-4);
  EXPECT_FALSE(w.grad().defined());
  // Without a gradient-carrying input there is no graph.
  EXPECT_FALSE(FrozenDenseLinear(x.detach(), w).requires_grad());
}

// Shards call from their own threads at once; each gets its own product.
TEST(FloatGemmTest, ConcurrentCallersGetTheirOwnProducts) {
  ScopedBlasThreads single(1);
  torch::Tensor w = torch::randn({512, 512});
  std::vector<torch::Tensor> in, out(4);
  for (int t = 0; t < 4; ++t) in.push_back(torch::randn({64 * (t + 1), 512}));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < 20; ++r) out[t] = FrozenGemm(in[t], w, true);
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_LT(RelativeError(out[t], in[t], w, true), 1e-5) << t;
}

TEST(FloatGemmTest, TheEnvironmentsChoiceIsParsedStrictly) {
  EXPECT_EQ(*ParseFloatGemm(""), FloatGemm::kAuto);
  EXPECT_EQ(*ParseFloatGemm("auto"), FloatGemm::kAuto);
  EXPECT_EQ(*ParseFloatGemm("openblas"), FloatGemm::kOpenBlas);
  absl::StatusOr<FloatGemm> bad = ParseFloatGemm("OpenBLAS");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()),
              AllOf(HasSubstr("'OpenBLAS'"), HasSubstr("auto, openblas")));
}

TEST(FloatGemmTest, BadOperandsAreRefusedWithTheirSizes) {
  torch::Tensor w = torch::randn({24, 16});
  EXPECT_THAT([&] { FrozenGemm(torch::randn({3, 15}), w, true); },
              ThrowsMessage<c10::Error>(HasSubstr("last dimension is 15")));
  EXPECT_THAT([&] { FrozenGemm(torch::randn({3, 16}).to(torch::kDouble), w, true); },
              ThrowsMessage<c10::Error>(HasSubstr("float32 operands expected")));
  torch::Tensor out = torch::empty({3, 23});
  EXPECT_THAT([&] { FrozenGemmOut(torch::randn({3, 16}), w, true, out); },
              ThrowsMessage<c10::Error>(HasSubstr("[3, 24]")));
  EXPECT_THAT([&] { FrozenDenseLinear(torch::randn({3, 16}), w.to(torch::kDouble)); },
              ThrowsMessage<c10::Error>(HasSubstr("float32 [out, in] weight")));
}

}  // namespace
}  // namespace fedlora::model
