#include "fedlora/device/personal_adapter.h"

#include <torch/types.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "device_testutil.h"
#include "fedlora/device/evaluate.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testutil/cli_runner.h"

namespace fedlora::device {
namespace {

using fedlora::testing::MakeLines;
using fedlora::testing::SharedTokenizer;
using fedlora::testing::SmallModel;

// A global adapter as a round would hand it out: A random, B moved away from zero.
adapters::LoraAdapter GlobalAdapter(const model::LlamaModel& m, adapters::LoraConfig* lc) {
  lc->rank = 8;
  lc->alpha = 16;
  auto a = adapters::LoraAdapter::Create(m.config(), *lc, 11);
  EXPECT_TRUE(a.ok()) << a.status();
  std::vector<float> flat = a->Flatten();
  SeededRandom rng(5);
  for (float& v : flat) v += static_cast<float>(0.02 * (rng.UniformDouble() - 0.5));
  EXPECT_TRUE(a->Unflatten(flat.data(), flat.size()).ok());
  return std::move(*a);
}

TrainOptions RoundOptions() {
  TrainOptions o;
  o.max_steps = 6;
  o.batch_size = 4;
  o.seed = 77;
  return o;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// A personal adapter trains on the user's text over the frozen global adapter, improves the
// user's loss, and leaves the global adapter and the model as they were.
TEST(PersonalAdapterTest, TrainsOnTopOfTheFrozenGlobalAdapter) {
  model::LlamaModel model = SmallModel(3);
  const auto& tok = SharedTokenizer();
  adapters::LoraConfig lc;
  adapters::LoraAdapter global = GlobalAdapter(model, &lc);
  const std::vector<float> global_before = global.Flatten();
  const std::vector<std::string> texts = MakeLines(2, 60, 9);
  PersonalOptions po;
  po.seq_len = 32;
  po.train.max_steps = 30;
  SeededRandom rng(1);
  auto personal = TrainPersonalAdapter(model, tok, global, texts, po, rng);
  ASSERT_TRUE(personal.ok()) << personal.status();
  EXPECT_TRUE(SameBits(global.Flatten(), global_before));
  for (const auto& layer : model.layers) {
    for (const auto& lin : layer.proj) EXPECT_TRUE(lin.loras.empty());
  }
  EXPECT_EQ(personal->adapter.config().rank, 4);
  ASSERT_TRUE(global.Attach(model).ok());
  const double global_nll = EvaluateTexts(model, tok, texts).mean_nll();
  ASSERT_TRUE(personal->adapter.Attach(model).ok());
  const double dual_nll = EvaluateTexts(model, tok, texts).mean_nll();
  EXPECT_LT(dual_nll, global_nll - 0.05);
  // Refused while something is attached: the global adapter is passed separately.
  auto again = TrainPersonalAdapter(model, tok, global, texts, po, rng);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(again.status().message(), ::testing::HasSubstr("hint"));
}

// What a round sends is computed from the global adapter alone: with a personal adapter
// attached (as an app keeps it for suggestions) the global delta is bit-identical to the one
// of a device without it, and the personal adapter is still attached afterwards. The same
// training with the personal adapter left in the forward pass gives another delta, so this
// test would see a leak.
TEST(PersonalAdapterTest, NeverShapesWhatARoundSends) {
  model::LlamaModel model = SmallModel(4);
  const auto& tok = SharedTokenizer();
  adapters::LoraConfig lc;
  adapters::LoraAdapter global = GlobalAdapter(model, &lc);
  const std::vector<float> start = global.Flatten();
  const std::vector<std::string> texts = MakeLines(1, 40, 3);
  auto plain = TrainGlobalDelta(model, tok, lc, start, texts, RoundOptions(), 32);
  ASSERT_TRUE(plain.ok()) << plain.status();

  PersonalOptions po;
  po.seq_len = 32;
  SeededRandom rng(2);
  auto personal = TrainPersonalAdapter(model, tok, global, texts, po, rng);
  ASSERT_TRUE(personal.ok()) << personal.status();
  ASSERT_TRUE(personal->adapter.Attach(model).ok());
  const std::vector<int64_t> probe = tok.EncodeWithBos(texts[0]);
  torch::Tensor ids = torch::tensor(probe, torch::kInt64).unsqueeze(0);
  const torch::Tensor before = model.Forward(ids, {}).detach().clone();

  auto with_personal = TrainGlobalDelta(model, tok, lc, start, texts, RoundOptions(), 32);
  ASSERT_TRUE(with_personal.ok()) << with_personal.status();
  EXPECT_TRUE(SameBits(with_personal->delta, plain->delta));
  EXPECT_EQ(with_personal->stats.mean_loss, plain->stats.mean_loss);
  EXPECT_EQ(with_personal->windows, plain->windows);
  EXPECT_TRUE(torch::equal(model.Forward(ids, {}), before));  // still attached, unchanged

  // Control: the personal adapter in the forward pass does change the delta.
  auto leaky = adapters::LoraAdapter::Create(model.config(), lc, 0);
  ASSERT_TRUE(leaky.ok());
  ASSERT_TRUE(leaky->Unflatten(start.data(), start.size()).ok());
  ASSERT_TRUE(leaky->Attach(model).ok());
  leaky->SetTrainable(true);
  auto stats = Train(model, leaky->Parameters(), MakeWindows(tok, texts, 32), RoundOptions());
  ASSERT_TRUE(stats.ok()) << stats.status();
  std::vector<float> leaked = leaky->Flatten();
  for (size_t i = 0; i < leaked.size(); ++i) leaked[i] -= start[i];
  EXPECT_FALSE(SameBits(leaked, plain->delta));
  leaky->Detach(model);
  personal->adapter.Detach(model);
}

// `fedlora device personalize` writes <state>/personal (PEFT, the rank asked for, the global
// adapter's targets), `suggest` applies it on top of the global adapter, and a missing global
// adapter is an error that names it.
TEST(PersonalAdapterTest, CliWritesAPersonalAdapterSuggestCanStack) {
  const std::string dir = ::testing::TempDir() + "/personal_cli_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  fedlora::testing::WriteModelDir(dir + "/model", fedlora::testing::SmallConfig());
  model::LlamaModel m = SmallModel(1);
  adapters::LoraConfig lc;
  ASSERT_TRUE(GlobalAdapter(m, &lc).SavePeft(dir + "/global").ok());
  {
    std::ofstream text(dir + "/mine.txt");
    for (const auto& line : MakeLines(3, 30, 4)) text << line << "\n";
  }
  const std::string common = " --model " + dir + "/model --text " + dir + "/mine.txt --state " +
                             dir + "/phone --seq 32 --steps 5 --rank 2 --json";
  auto r = fedlora::testing::RunFedlora("device personalize --global " + dir + "/global" + common,
                                        dir);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["steps"], 5);
  auto saved = adapters::LoraAdapter::LoadPeft(dir + "/phone/personal");
  ASSERT_TRUE(saved.ok()) << saved.status();
  EXPECT_EQ(saved->config().rank, 2);
  EXPECT_EQ(saved->config().targets, lc.targets);
  auto s = fedlora::testing::RunFedlora("suggest --model " + dir + "/model --adapter " + dir +
                                            "/global --adapter " + dir +
                                            "/phone/personal --prefix hey --json",
                                        dir);
  EXPECT_EQ(s.exit_code, 0) << s.err;
  EXPECT_THAT(s.out, ::testing::HasSubstr("suggestions"));
  auto bad = fedlora::testing::RunFedlora("device personalize --global " + dir + "/nowhere" + common,
                                          dir);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, ::testing::HasSubstr("nowhere"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fedlora::device
