// ResidualLoraInit: scaling * B A is the best rank-r approximation of W - W'.
#include "fedlora/compress/lora_init.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fedlora/compress/compress_model.h"
#include "testutil/tiny_llama.h"

namespace fedlora::compress {
namespace {

TEST(LoraInitTest, FactorsAreTheTopSingularDirectionsOfTheResidual) {
  const model::LlamaConfig c = fedlora::testing::TinyLlamaConfig(40, 32, 4, 32);
  model::LlamaModel float_model = model::LlamaModel::RandomInit(c, 3);
  model::LlamaModel packed = model::LlamaModel::RandomInit(c, 3);
  CompressOptions o;
  o.method = "rtn";
  o.bits = 2;
  o.group = 16;
  o.progress = false;
  ASSERT_TRUE(CompressModel(packed, o).ok());
  const int rank = 4;
  const double scaling = 2.0;
  auto f =
      ResidualLoraInit(float_model, packed, rank, scaling, {model::Proj::kQ, model::Proj::kDown});
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->size(), 4u);
  for (const auto& x : *f) {
    const model::Linear& lin = float_model.layers[x.layer].Get(x.proj);
    torch::Tensor resid =
        (lin.weight - packed.layers[x.layer].Get(x.proj).DenseWeight()).to(torch::kDouble);
    EXPECT_EQ(x.A.sizes(), (std::vector<int64_t>{rank, lin.in_features()}));
    EXPECT_EQ(x.B.sizes(), (std::vector<int64_t>{lin.out_features(), rank}));
    torch::Tensor approx = scaling * x.B.to(torch::kDouble).mm(x.A.to(torch::kDouble));
    // Eckart-Young: the remaining error is the norm of the tail singular values.
    torch::Tensor s = at::linalg_svdvals(resid);
    const double tail = s.narrow(0, rank, s.size(0) - rank).pow(2).sum().sqrt().item<double>();
    EXPECT_NEAR((resid - approx).norm().item<double>(), tail, 1e-4 * tail);
    EXPECT_LT(tail, resid.norm().item<double>());
  }
  EXPECT_FALSE(ResidualLoraInit(float_model, packed, 0, 1.0, {model::Proj::kQ}).ok());
}

}  // namespace
}  // namespace fedlora::compress
