#include "fedlora/device/trainer.h"

#include <torch/types.h>
#include <torch/utils.h>

#include "device_testutil.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/adapters/stacked_lora.h"
#include "fedlora/device/evaluate.h"
#include "fedlora/model/threads.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::device {
namespace {

using fedlora::testing::MakeLines;
using fedlora::testing::SharedTokenizer;
using fedlora::testing::SmallModel;

adapters::LoraAdapter MakeAdapter(const model::LlamaModel& m, uint64_t seed) {
  adapters::LoraConfig lc;
  lc.rank = 4;
  lc.alpha = 8;
  auto a = adapters::LoraAdapter::Create(m.config(), lc, seed);
  EXPECT_TRUE(a.ok()) << a.status();
  return std::move(*a);
}

// MakeAdapter, attached to `m` and trainable.
adapters::LoraAdapter TrainableAdapter(model::LlamaModel& m, uint64_t seed) {
  adapters::LoraAdapter a = MakeAdapter(m, seed);
  EXPECT_TRUE(a.Attach(m).ok());
  a.SetTrainable(true);
  return a;
}

// `flat` with small non-zero values added everywhere (B too), so every path carries gradient.
std::vector<float> Perturbed(std::vector<float> flat) {
  for (size_t i = 0; i < flat.size(); ++i) flat[i] += 0.01f * std::sin(0.1f * i);
  return flat;
}

double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    d = std::max(d, std::abs(double(a[i]) - b[i]));
  }
  return d;
}

// Three devices' windows (lines of 3 speakers) and seeds for batched-training tests.
void ThreeDevices(int lines, std::vector<TokenWindows>* windows, std::vector<uint64_t>* seeds) {
  for (int g = 0; g < 3; ++g) {
    windows->push_back(MakeWindows(SharedTokenizer(), MakeLines(g, lines, 3), 24));
    seeds->push_back(100 + g);
  }
}

TEST(MakeWindowsTest, CutsStreamIntoPaddedWindows) {
  const auto& tok = SharedTokenizer();
  TokenWindows w = MakeWindows(tok, {"hey maya", "cheers otto"}, 4);
  int64_t stream = static_cast<int64_t>(tok.EncodeWithBos("hey maya").size() +
                                        tok.EncodeWithBos("cheers otto").size() + 2);
  EXPECT_EQ(w.mask.sum().item<int64_t>(), stream - (stream % 4 == 1 ? 1 : 0));
  EXPECT_EQ(w.ids.size(1), 4);
  EXPECT_EQ(w.ids[0][0].item<int64_t>(), tok.bos_id());
  EXPECT_EQ(MakeWindows(tok, {}, 4).size(), 0);
}

TEST(TrainerTest, LoraTrainingLowersHeldOutPerplexityAndKeepsBaseBitwise) {
  const auto& tok = SharedTokenizer();
  model::LlamaModel m = SmallModel(3);
  std::vector<torch::Tensor> before;
  for (auto& [name, t] : m.NamedParameters()) before.push_back(t->clone());
  auto adapter = MakeAdapter(m, 1);
  ASSERT_TRUE(adapter.Attach(m).ok());
  adapter.SetTrainable(true);
  auto lines = MakeLines(2, 60, 5);
  std::vector<std::string> train(lines.begin(), lines.begin() + 45),
      test(lines.begin() + 45, lines.end());
  TextMetrics base = EvaluateTexts(m, tok, test);
  TrainOptions o;
  o.optimizer.lr = 1e-2;
  o.batch_size = 4;
  o.max_steps = 40;
  auto stats = Train(m, adapter.Parameters(), MakeWindows(tok, train, 32), o);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_LT(stats->last_loss, stats->first_loss);
  TextMetrics after = EvaluateTexts(m, tok, test);
  EXPECT_LT(after.perplexity(), base.perplexity() * 0.7);
  EXPECT_GT(after.next_token_top1(), base.next_token_top1());
  size_t i = 0;
  for (auto& [name, t] : m.NamedParameters()) {
    EXPECT_TRUE(torch::equal(*t, before[i++])) << name << " changed";
    EXPECT_FALSE(t->requires_grad()) << name;
    EXPECT_FALSE(t->grad().defined()) << name << " has a gradient buffer";
  }
}

TEST(TrainerTest, SameSeedRepeatsExactly) {
  const auto& tok = SharedTokenizer();
  std::vector<std::vector<float>> results;
  for (int run = 0; run < 2; ++run) {
    model::LlamaModel m = SmallModel(3);
    auto adapter = TrainableAdapter(m, 1);
    TrainOptions o;
    o.batch_size = 2;
    o.max_steps = 5;
    o.seed = 9;
    ASSERT_TRUE(Train(m, adapter.Parameters(), MakeWindows(tok, MakeLines(1, 20, 1), 32), o).ok());
    results.push_back(adapter.Flatten());
  }
  EXPECT_EQ(results[0], results[1]);
}

// A device's time budget: training stops after the step that crosses max_seconds (at least
// one step), and the stats say how many steps ran; without a budget all steps run.
TEST(TrainerTest, TimeBudgetStopsEarly) {
  const auto& tok = SharedTokenizer();
  model::LlamaModel m = SmallModel(3);
  auto adapter = TrainableAdapter(m, 1);
  TrainOptions o;
  o.batch_size = 2;
  o.max_steps = 100000;
  o.max_seconds = 1e-9;  // crossed by the first step
  auto stats = Train(m, adapter.Parameters(), MakeWindows(tok, MakeLines(1, 20, 1), 32), o);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->steps, 1);
  EXPECT_EQ(stats->losses.size(), 1u);
  o.max_steps = 3;
  o.max_seconds = 0;
  stats = Train(m, adapter.Parameters(), MakeWindows(tok, MakeLines(1, 20, 1), 32), o);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->steps, 3);
}

TEST(TrainerTest, GroupedTrainingEqualsSequentialPerDevice) {
  model::LlamaModel m = SmallModel(4);
  auto global = MakeAdapter(m, 2);
  const std::vector<float> flat = Perturbed(global.Flatten());
  ASSERT_TRUE(global.Unflatten(flat.data(), flat.size()).ok());
  TrainOptions o;
  o.optimizer.lr = 5e-3;
  o.optimizer.max_grad_norm = 0.5;  // per-device clipping must match too
  o.batch_size = 2;
  o.max_steps = 4;
  const int groups = 3;
  std::vector<TokenWindows> windows;
  std::vector<uint64_t> seeds;
  ThreeDevices(12, &windows, &seeds);
  // Sequential: one device at a time.
  std::vector<std::vector<float>> sequential;
  for (int g = 0; g < groups; ++g) {
    adapters::LoraAdapter a = global.Clone();
    ASSERT_TRUE(a.Attach(m).ok());
    a.SetTrainable(true);
    TrainOptions og = o;
    og.seed = seeds[g];
    ASSERT_TRUE(Train(m, a.Parameters(), windows[g], og).ok());
    sequential.push_back(a.Flatten());
    a.Detach(m);
  }
  // Batched: all devices in one pass.
  auto stacked = adapters::StackedLora::Create(m.config(), global.config(),
                                               std::vector<std::vector<float>>(groups, flat));
  ASSERT_TRUE(stacked.ok()) << stacked.status();
  ASSERT_TRUE(stacked->Attach(m).ok());
  ASSERT_TRUE(TrainGrouped(m, stacked->Parameters(), windows, seeds, o).ok());
  for (int g = 0; g < groups; ++g) {
    std::vector<float> batched = stacked->Flatten(g);
    EXPECT_LT(MaxAbsDiff(batched, sequential[g]), 1e-5) << "group " << g;
    EXPECT_NE(batched, flat) << "group " << g << " did not train";
  }
  stacked->Detach(m);
}

// Ditto's proximal term: the larger prox_mu, the closer the trained adapter stays to where it
// started; the reported loss is the data loss alone.
TEST(TrainerTest, ProximalTermPullsTowardsTheStart) {
  const auto& tok = SharedTokenizer();
  TokenWindows w = MakeWindows(tok, MakeLines(1, 40, 5), 16);
  double moved[2] = {0, 0};
  for (int k = 0; k < 2; ++k) {
    model::LlamaModel m = SmallModel(9);
    adapters::LoraAdapter a = MakeAdapter(m, 3);
    ASSERT_TRUE(a.Attach(m).ok());
    a.SetTrainable(true);
    const std::vector<float> start = a.Flatten();
    TrainOptions o;
    o.max_steps = 15;
    o.batch_size = 4;
    o.seed = 1;
    o.prox_mu = k == 0 ? 0.0 : 50.0;
    auto stats = Train(m, a.Parameters(), w, o);
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_LT(stats->first_loss, 20.0);  // data loss only, not inflated by the penalty
    const std::vector<float> end = a.Flatten();
    for (size_t i = 0; i < end.size(); ++i) moved[k] += (end[i] - start[i]) * (end[i] - start[i]);
  }
  EXPECT_GT(moved[0], 0);
  EXPECT_LT(moved[1], 0.5 * moved[0]);
}

// Data-parallel shards (TrainOptions::shards): the batch split over 2 or 3 threads (an
// uneven split of 4 windows into 1 + 1 + 2 included) gives the losses and the adapter of one
// pass, with padded windows (the loss is normalised by the whole batch's real targets, not
// each shard's), gradient clipping and the proximal term on.
TEST(TrainerTest, ShardedStepsEqualOnePass) {
  const auto& tok = SharedTokenizer();
  TokenWindows w = MakeWindows(tok, MakeLines(2, 30, 4), 24);
  // Pad the second half of window 1 so the shards hold different numbers of real targets.
  w.mask[1].narrow(0, 12, 12).fill_(0);
  ASSERT_GE(w.size(), 4);
  std::vector<std::vector<float>> adapters;
  std::vector<std::vector<double>> losses;
  for (int threads : {1, 2, 3}) {
    model::LlamaModel m = SmallModel(5);
    auto a = TrainableAdapter(m, 7);
    const std::vector<float> flat = Perturbed(a.Flatten());
    ASSERT_TRUE(a.Unflatten(flat.data(), flat.size()).ok());
    TrainOptions o;
    o.optimizer.lr = 1e-2;
    o.optimizer.max_grad_norm = 0.5;
    o.prox_mu = 0.5;
    o.batch_size = 4;
    o.max_steps = 5;
    o.seed = 3;
    o.shards = threads;
    auto stats = Train(m, a.Parameters(), w, o);
    ASSERT_TRUE(stats.ok()) << stats.status();
    adapters.push_back(a.Flatten());
    losses.push_back(stats->losses);
    EXPECT_NE(adapters.back(), flat) << threads << " threads did not train";
  }
  for (size_t k = 1; k < adapters.size(); ++k) {
    EXPECT_LT(MaxAbsDiff(adapters[k], adapters[0]), 1e-5) << k + 1 << " threads";
    ASSERT_EQ(losses[k].size(), losses[0].size());
    for (size_t i = 0; i < losses[0].size(); ++i) EXPECT_NEAR(losses[k][i], losses[0][i], 1e-5);
  }
}

// The trainer runs the model on each window's first T - 1 tokens only (the last one is only a
// target). Its first loss must still be the loss of the whole windows through the model's
// full forward pass and NextTokenLoss, padded windows included.
TEST(TrainerTest, FirstLossEqualsTheFullWindowsLoss) {
  const auto& tok = SharedTokenizer();
  TokenWindows w = MakeWindows(tok, MakeLines(2, 30, 4), 24);
  w.mask[1].narrow(0, 10, 14).fill_(0);  // padding at the end of a window
  for (int shards : {1, 2}) {
    model::LlamaModel m = SmallModel(5);
    auto a = TrainableAdapter(m, 7);
    const std::vector<float> flat = Perturbed(a.Flatten());
    ASSERT_TRUE(a.Unflatten(flat.data(), flat.size()).ok());
    model::ForwardOptions fo;
    fo.attention_mask = w.mask;
    double expected;
    {
      torch::NoGradGuard no_grad;
      expected = model::NextTokenLoss(m.Forward(w.ids, fo), w.ids, w.mask).item<double>();
    }
    TrainOptions o;
    o.batch_size = w.size();  // one step over every window: the order does not matter
    o.max_steps = 1;
    o.shards = shards;
    auto stats = Train(m, a.Parameters(), w, o);
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_NEAR(stats->first_loss, expected, 1e-5 * std::abs(expected)) << shards << " shards";
  }
}

// How many shards a step runs in: by default one per BLAS thread (the caller's thread budget),
// never more than the windows of a batch.
TEST(TrainerTest, ShardCountFollowsTheThreadBudgetAndTheBatch) {
  TokenWindows w = MakeWindows(SharedTokenizer(), MakeLines(1, 30, 4), 24);
  ASSERT_GE(w.size(), 4);
  model::LlamaModel m = SmallModel(3);
  auto a = TrainableAdapter(m, 1);
  auto shards_of = [&](int shards, int blas_threads) {
    model::ScopedBlasThreads budget(blas_threads);
    TrainOptions o;
    o.batch_size = 4;
    o.max_steps = 1;
    o.shards = shards;
    auto stats = Train(m, a.Parameters(), w, o);
    EXPECT_TRUE(stats.ok()) << stats.status();
    return stats.ok() ? stats->shards : -1;
  };
  EXPECT_EQ(shards_of(0, 1), 1);
  EXPECT_EQ(shards_of(0, 2), 2);
  EXPECT_EQ(shards_of(2, 1), 2);
  EXPECT_EQ(shards_of(8, 1), 4);  // capped at the batch's 4 windows
  EXPECT_EQ(shards_of(1, 2), 1);
}

// The same for batched multi-device training: every group's windows are split across the
// shards and each group still trains as it would alone.
TEST(TrainerTest, ShardedGroupedStepsEqualOnePass) {
  model::LlamaModel m = SmallModel(4);
  auto global = MakeAdapter(m, 2);
  const std::vector<float> flat = Perturbed(global.Flatten());
  const int groups = 3;
  std::vector<TokenWindows> windows;
  std::vector<uint64_t> seeds;
  ThreeDevices(16, &windows, &seeds);
  std::vector<std::vector<std::vector<float>>> results;
  for (int threads : {1, 2}) {
    auto stacked = adapters::StackedLora::Create(m.config(), global.config(),
                                                 std::vector<std::vector<float>>(groups, flat));
    ASSERT_TRUE(stacked.ok()) << stacked.status();
    ASSERT_TRUE(stacked->Attach(m).ok());
    TrainOptions o;
    o.optimizer.lr = 5e-3;
    o.optimizer.max_grad_norm = 0.5;
    o.batch_size = 2;
    o.max_steps = 4;
    o.shards = threads;
    ASSERT_TRUE(TrainGrouped(m, stacked->Parameters(), windows, seeds, o).ok());
    results.emplace_back();
    for (int g = 0; g < groups; ++g) results.back().push_back(stacked->Flatten(g));
    stacked->Detach(m);
  }
  for (int g = 0; g < groups; ++g) {
    EXPECT_LT(MaxAbsDiff(results[1][g], results[0][g]), 1e-5) << "group " << g;
    EXPECT_NE(results[1][g], flat) << "group " << g << " did not train";
  }
}

TEST(TrainerTest, RefusesEmptyDataAndNoParameters) {
  model::LlamaModel m = SmallModel(3);
  auto adapter = MakeAdapter(m, 1);
  TrainOptions o;
  auto r = Train(m, adapter.Parameters(), TokenWindows(), o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("no training windows"));
  auto r2 = Train(m, {}, MakeWindows(SharedTokenizer(), MakeLines(0, 3, 1), 16), o);
  EXPECT_EQ(r2.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fedlora::device
