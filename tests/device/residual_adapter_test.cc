// The LoRA adapter initialised from what compression lost: every projection of the compressed
// base plus it is closer to the float projection than the compressed one alone (on the random
// fixture the whole model's logits are too chaotic to rank; docs/compress.md measures the
// perplexity on a trained base), and `fedlora compress
// --lora-init-rank` writes it as a PEFT adapter that training starts from.
#include "fedlora/device/residual_adapter.h"

#include <filesystem>
#include <fstream>

#include "fedlora/compress/compress_model.h"
#include "fedlora/device/runtime.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testutil/cli_runner.h"

namespace fedlora::device {
namespace {

namespace fs = std::filesystem;
const std::string kBase = std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama/base";

TEST(ResidualAdapterTest, BringsEveryCompressedProjectionBackTowardsTheFloatOne) {
  if (!fs::exists(kBase)) GTEST_SKIP() << "no ../shared fixture";
  auto float_rt = LoadRuntime(kBase);
  auto packed_rt = LoadRuntime(kBase);
  ASSERT_TRUE(float_rt.ok() && packed_rt.ok());
  compress::CompressOptions o;
  o.method = "rtn";
  o.bits = 2;
  o.group = 32;
  o.progress = false;
  ASSERT_TRUE(compress::CompressModel(*packed_rt->model, o).ok());
  adapters::LoraConfig lc;
  lc.rank = 8;
  lc.alpha = 16;
  lc.targets = {model::Proj::kQ, model::Proj::kK, model::Proj::kV, model::Proj::kO,
                model::Proj::kGate, model::Proj::kUp, model::Proj::kDown};
  auto adapter = ResidualAdapter(kBase, *packed_rt->model, lc);
  ASSERT_TRUE(adapter.ok()) << adapter.status();
  // Unlike a fresh adapter (B = 0), it starts away from zero.
  EXPECT_GT(adapter->slots()[0].B.abs().sum().item<double>(), 0.0);
  // Every projection's output on random inputs moves towards the float projection's.
  std::vector<double> before;
  auto gap = [&](const adapters::LoraAdapter::Slot& slot) {
    torch::NoGradGuard no_grad;
    const auto& f = float_rt->model->layers[slot.layer].Get(slot.proj);
    const auto& p = packed_rt->model->layers[slot.layer].Get(slot.proj);
    const torch::Tensor in = torch::randn({16, f.in_features()}, torch::kFloat);
    return (f.Forward(in, false) - p.Forward(in, false)).norm().item<double>();
  };
  for (const auto& slot : adapter->slots()) {
    torch::manual_seed(slot.layer * 10 + static_cast<int>(slot.proj));
    before.push_back(gap(slot));
  }
  ASSERT_TRUE(adapter->Attach(*packed_rt->model).ok());
  for (size_t i = 0; i < adapter->slots().size(); ++i) {
    const auto& slot = adapter->slots()[i];
    torch::manual_seed(slot.layer * 10 + static_cast<int>(slot.proj));
    const double after = gap(slot);
    EXPECT_LT(after, 0.95 * before[i]) << slot.layer << " " << model::ProjName(slot.proj);
  }
  adapter->Detach(*packed_rt->model);

  lc.layers = {7};  // the fixture has 2 layers
  EXPECT_FALSE(ResidualAdapter(kBase, *packed_rt->model, lc).ok());
}

TEST(ResidualAdapterTest, CompressWritesALoraInitThatTrainingStartsFrom) {
  if (!fs::exists(kBase)) GTEST_SKIP() << "no ../shared fixture";
  const std::string root = ::testing::TempDir() + "/residual_cli";
  fs::remove_all(root);
  fs::create_directories(root);
  auto c = testing::RunFedlora("compress --model " + kBase + " --out " + root +
                                   "/q2 --method rtn --bits 2 --lora-init-rank 4 --json",
                               root);
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_THAT(c.out, ::testing::HasSubstr("\"lora_init\""));
  ASSERT_TRUE(fs::exists(root + "/q2/lora_init/adapter_model.safetensors"));
  {
    std::ofstream text(root + "/text.txt");
    for (int i = 0; i < 40; ++i) text << "the quick brown fox jumps over the lazy dog " << i << "\n";
  }
  auto t = testing::RunFedlora("train --model " + root + "/q2 --init-adapter " + root +
                                   "/q2/lora_init --data " + root + "/text.txt --out " + root +
                                   "/me --steps 3 --json",
                               root);
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_TRUE(fs::exists(root + "/me/adapter_model.safetensors"));
  auto bad = testing::RunFedlora("compress --model " + kBase + " --out " + root +
                                     "/q2b --method rtn --bits 2 --lora-init-rank 4 "
                                     "--lora-targets nope",
                                 root);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, ::testing::HasSubstr("nope"));
}

}  // namespace
}  // namespace fedlora::device
