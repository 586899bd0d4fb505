// int8 arithmetic for packed weights: products within about 1% of the float32 product row
// by row (small rows keep their precision), the input gradient likewise, small products left
// to the packed format, NaN rows kept NaN, concurrent first use, and the loader's switch.
#include "fedlora/compress/int8_compute.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <thread>

#include "compress/compress_testutil.h"
#include "fedlora/compress/checkpoint.h"
#include "fedlora/compress/compress_model.h"
#include "fedlora/compress/rtn.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/device/runtime.h"
#include "fedlora/device/trainer.h"
#include "fedlora/model/frozen_weight.h"
#include "fedlora/model/linear.h"

namespace fedlora::compress {
namespace {

using ::testing::HasSubstr;
using testing::TestMatrix;

std::shared_ptr<const PackedWeight> Packed(int64_t out, int64_t in, uint64_t seed) {
  auto q = RtnWeight::Quantize(TestMatrix(out, in, seed), 4, 32);
  EXPECT_TRUE(q.ok()) << q.status();
  return *q;
}

// Rows whose magnitudes span four orders (1e-3 .. 10): a per-tensor scale would flatten the
// small ones to zero.
torch::Tensor SpreadRows(int64_t rows, int64_t cols, uint64_t seed) {
  torch::Tensor x = TestMatrix(rows, cols, seed);
  torch::Tensor mag = torch::pow(10.0, torch::linspace(-3, 1, rows)).to(torch::kFloat);
  return x * mag.unsqueeze(1);
}

// Relative error of each row, |y_r - ref_r| / |ref_r|: the worst and the mean. int8 on both
// sides of a product of these heavy-tailed rows (TestMatrix has outliers, which set a row's
// scale) errs by about 2-3% on average and under 8% at worst; the exact arithmetic is checked
// against an emulation below.
struct RowError {
  double worst, mean;
};
RowError RowErrors(const torch::Tensor& y, const torch::Tensor& ref) {
  torch::Tensor num = (y - ref).reshape({-1, ref.size(-1)}).norm(2, 1);
  torch::Tensor den = ref.reshape({-1, ref.size(-1)}).norm(2, 1);
  torch::Tensor e = num / den;
  return {e.max().item<double>(), e.mean().item<double>()};
}
void ExpectInt8Close(const torch::Tensor& y, const torch::Tensor& ref) {
  const RowError e = RowErrors(y, ref);
  EXPECT_LT(e.worst, 0.08);
  EXPECT_LT(e.mean, 0.04);
  EXPECT_GT(e.mean, 0.0);  // it really ran in int8
}

TEST(Int8ComputeTest, ProductAndInputGradientFollowTheFloatProductRowByRow) {
  auto inner = Packed(96, 160, 1);
  Int8ComputeWeight w(inner);
  EXPECT_FALSE(w.built());
  const int64_t before = w.bytes();
  torch::Tensor dense = inner->Dense();

  torch::Tensor x = SpreadRows(40, 160, 2).view({2, 20, 160});
  torch::Tensor y = w.Apply(x);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, 20, 96}));
  ExpectInt8Close(y, at::linear(x, dense));
  EXPECT_TRUE(w.built());
  EXPECT_EQ(w.bytes(), before + 96 * 160 + 4 * 96);

  torch::Tensor dy = SpreadRows(40, 96, 3).view({4, 10, 96});
  torch::Tensor dx = w.ApplyTransposed(dy);
  ASSERT_EQ(dx.sizes(), (std::vector<int64_t>{4, 10, 160}));
  ExpectInt8Close(dx, at::matmul(dy, dense));

  EXPECT_THAT(w.scheme(), HasSubstr("int8 arithmetic"));
  EXPECT_EQ(w.Scheme(), inner->Scheme());  // saved exactly as the inner format
}

// The same arithmetic written with libtorch's ops: rows of x rounded to 127 levels of their
// own largest magnitude, rows of W to Int8WeightLevels() (63 without VNNI: run the suite with
// DNNL_MAX_CPU_ISA=AVX2 to check that path on a VNNI machine), the integer product (exact in float32 at this size), then both
// scales. Agreement to float rounding shows the kernel computes exactly this.
TEST(Int8ComputeTest, MatchesAnEmulationOfItsQuantization) {
  auto inner = Packed(40, 72, 21);
  Int8ComputeWeight w(inner);
  auto quantize_rows = [](const torch::Tensor& t, double levels) {
    torch::Tensor s = t.abs().amax(1, true) / levels;
    return std::make_pair(torch::round(t / s), s);
  };
  torch::Tensor x = SpreadRows(24, 72, 22);
  auto [xq, xs] = quantize_rows(x, 127);
  auto [wq, ws] = quantize_rows(inner->Dense(), Int8WeightLevels());
  torch::Tensor want = at::linear(xq, wq) * xs * ws.t();
  EXPECT_TRUE(torch::allclose(w.Apply(x), want, 1e-5, 1e-9));
  // The input gradient: the weight's row scales folded into dy, then dy's rows rounded.
  torch::Tensor dy = SpreadRows(24, 40, 23);
  auto [dq, ds] = quantize_rows(dy * ws.t(), 127);
  EXPECT_TRUE(torch::allclose(w.ApplyTransposed(dy), at::matmul(dq, wq) * ds, 1e-5, 1e-9));
}

TEST(Int8ComputeTest, SmallProductsAreThePackedFormatsOwn) {
  auto inner = Packed(48, 64, 4);
  Int8ComputeWeight w(inner);
  torch::Tensor x = TestMatrix(kInt8MinRows - 1, 64, 5);
  EXPECT_TRUE(torch::equal(w.Apply(x), inner->Apply(x)));
  torch::Tensor dy = TestMatrix(3, 48, 6);
  EXPECT_TRUE(torch::equal(w.ApplyTransposed(dy), inner->ApplyTransposed(dy)));
  EXPECT_FALSE(w.built());  // a device that only decodes never holds the int8 copy
}

TEST(Int8ComputeTest, ANonFiniteRowStaysNonFiniteAndLeavesTheOthers) {
  Int8ComputeWeight w(Packed(32, 64, 7));
  torch::Tensor x = TestMatrix(20, 64, 8);
  x[3][5] = std::numeric_limits<float>::quiet_NaN();
  x[7][0] = std::numeric_limits<float>::infinity();
  torch::Tensor y = w.Apply(x);
  torch::Tensor finite_rows = torch::isfinite(y).all(1);
  EXPECT_FALSE(finite_rows[3].item<bool>());
  EXPECT_FALSE(finite_rows[7].item<bool>());
  EXPECT_EQ(finite_rows.sum().item<int64_t>(), 18);
}

// A mis-shaped input is refused with both sizes named, in either direction, before oneDNN
// sees it (Linear checks shapes first; this is the weight's own guard).
TEST(Int8ComputeTest, AMisShapedInputIsRefusedWithBothSizes) {
  Int8ComputeWeight w(Packed(32, 64, 12));
  using ::testing::AllOf;
  using ::testing::ThrowsMessage;
  EXPECT_THAT([&] { w.Apply(TestMatrix(20, 63, 13)); },
              ThrowsMessage<c10::Error>(AllOf(HasSubstr("63"), HasSubstr("64"))));
  EXPECT_THAT([&] { w.ApplyTransposed(TestMatrix(20, 31, 14)); },
              ThrowsMessage<c10::Error>(AllOf(HasSubstr("31"), HasSubstr("32"))));
}

TEST(Int8ComputeTest, ConcurrentFirstUseBuildsOnceAndAgreesWithSerial) {
  auto inner = Packed(64, 96, 9);
  Int8ComputeWeight serial(inner), shared(inner);
  std::vector<torch::Tensor> xs, want(4), got(4);
  for (int i = 0; i < 4; ++i) xs.push_back(TestMatrix(32, 96, 10 + i));
  for (int i = 0; i < 4; ++i) want[i] = serial.Apply(xs[i]);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back([&, i] { got[i] = shared.Apply(xs[i]); });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(torch::equal(got[i], want[i])) << i;
}

// Through model::FrozenLinear: the gradient reaching a LoRA adapter below an int8 layer is the
// float32 one to within int8 rounding.
TEST(Int8ComputeTest, GradientsThroughFrozenLinearMatchFloat) {
  auto inner = Packed(80, 48, 11);
  auto run = [&](std::shared_ptr<const model::FrozenWeight> frozen) {
    torch::Tensor x = TestMatrix(24, 48, 12).requires_grad_(true);
    torch::Tensor y = model::FrozenLinear(x, frozen);
    (y * TestMatrix(24, 80, 13)).sum().backward();
    return std::make_pair(y.detach(), x.grad());
  };
  auto [y_ref, g_ref] = run(inner);
  auto [y8, g8] = run(std::make_shared<Int8ComputeWeight>(inner));
  ExpectInt8Close(y8, y_ref);
  ExpectInt8Close(g8, g_ref);
}

class Int8LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = testing::FixtureModelDir();
    if (src_.empty()) GTEST_SKIP() << "../shared absent";
    out_ = testing::FreshTempDir("int8load");
    auto rt = device::LoadRuntime(src_);
    ASSERT_TRUE(rt.ok()) << rt.status();
    CompressOptions o;
    o.method = "rtn";
    o.bits = 4;
    ASSERT_TRUE(CompressModel(*rt->model, o).ok());
    ASSERT_TRUE(SaveCompressedModel(*rt->model, src_, out_ + "/c", {{"method", "rtn"}}).ok());
  }
  void TearDown() override {
    unsetenv("FEDLORA_INT8_COMPUTE");
    if (!out_.empty()) std::filesystem::remove_all(out_);
  }
  int Wrapped(const model::LlamaModel& m) {
    int n = 0;
    for (const auto& layer : m.layers) {
      for (const model::Linear& lin : layer.proj) {
        n += dynamic_cast<const Int8ComputeWeight*>(lin.frozen.get()) != nullptr;
      }
    }
    return n;
  }
  std::string src_, out_;
};

TEST_F(Int8LoaderTest, TheSwitchIsHonouredAndABadValueIsNamed) {
  setenv("FEDLORA_INT8_COMPUTE", "on", 1);
  auto on = LoadCompressedModel(out_ + "/c");
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_EQ(Wrapped(**on), static_cast<int>((*on)->layers.size()) * model::kNumProj);
  // Saving the wrapped model writes the same packed tensors.
  ASSERT_TRUE(SaveCompressedModel(**on, src_, out_ + "/again", {{"method", "rtn"}}).ok());
  auto a = ReadCompressionJson(out_ + "/c");
  auto b = ReadCompressionJson(out_ + "/again");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)["weights_sha256"], (*b)["weights_sha256"]);

  setenv("FEDLORA_INT8_COMPUTE", "off", 1);
  auto off = LoadCompressedModel(out_ + "/c");
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(Wrapped(**off), 0);

  setenv("FEDLORA_INT8_COMPUTE", "fast", 1);
  auto bad = LoadCompressedModel(out_ + "/c");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("FEDLORA_INT8_COMPUTE='fast'"));
  EXPECT_THAT(bad.status().message(), HasSubstr("hint"));
}

// LoRA training on the compressed fixture, in the packed format's own arithmetic and in int8:
// the same losses step by step to within 1%, and the adapters move the same way.
TEST_F(Int8LoaderTest, TrainingFollowsThePackedFormatsOwnArithmetic) {
  const std::string text = testing::WikiTextPrefix(20000);
  ASSERT_FALSE(text.empty());
  auto train = [&](const char* mode) {
    setenv("FEDLORA_INT8_COMPUTE", mode, 1);
    auto rt = device::LoadRuntime(out_ + "/c");
    EXPECT_TRUE(rt.ok()) << rt.status();
    adapters::LoraConfig lc;
    lc.rank = 4;
    auto adapter = adapters::LoraAdapter::Create(rt->model->config(), lc, 5);
    EXPECT_TRUE(adapter.ok() && adapter->Attach(*rt->model).ok());
    adapter->SetTrainable(true);
    auto windows = device::MakeWindows(*rt->tokenizer, {text}, 32);
    device::TrainOptions o;
    o.batch_size = 4;
    o.max_steps = 6;
    o.shards = 2;
    auto stats = device::Train(*rt->model, adapter->Parameters(), windows, o);
    EXPECT_TRUE(stats.ok()) << stats.status();
    EXPECT_EQ(Wrapped(*rt->model) > 0, std::string(mode) == "on");
    return std::make_pair(stats->losses, torch::tensor(adapter->Flatten()));
  };
  auto [own_losses, own_after] = train("off");
  auto [int8_losses, int8_after] = train("on");
  ASSERT_EQ(own_losses.size(), 6u);
  ASSERT_EQ(int8_losses.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(int8_losses[i], own_losses[i], 0.01 * own_losses[i]);
  EXPECT_NE(int8_losses, own_losses);  // int8 really ran
  // Both started from the same seeded adapter: their updates point the same way.
  setenv("FEDLORA_INT8_COMPUTE", "off", 1);
  auto rt = device::LoadRuntime(out_ + "/c");
  ASSERT_TRUE(rt.ok());
  adapters::LoraConfig lc;
  lc.rank = 4;
  auto start = adapters::LoraAdapter::Create(rt->model->config(), lc, 5);
  ASSERT_TRUE(start.ok());
  torch::Tensor before = torch::tensor(start->Flatten());
  torch::Tensor d_own = own_after - before, d_int8 = int8_after - before;
  EXPECT_GT(torch::cosine_similarity(d_own, d_int8, 0).item<double>(), 0.95);
}

}  // namespace
}  // namespace fedlora::compress
