// StackedLora: G adapters trained in one batch behave like G separate adapters.
#include "fedlora/adapters/stacked_lora.h"

#include <torch/types.h>

#include "adapters/lora_testutil.h"
#include "fedlora/adapters/lora_adapter.h"
#include "gtest/gtest.h"

namespace fedlora::adapters {
namespace {

using model::Proj;
using testing::TinyConfig;

constexpr int kGroups = 3;
constexpr int64_t kPerGroup = 2, kLen = 7;

class StackedLoraTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.rank = 3;
    config_.alpha = 6;
    config_.targets = {Proj::kQ, Proj::kV, Proj::kDown};
    for (int g = 0; g < kGroups; ++g) {
      adapters_.push_back(testing::RandomAdapter(TinyConfig(), config_, 100 + g));
      flats_.push_back(adapters_.back().Flatten());
    }
    ids_ = testing::RandomIds(kGroups * kPerGroup, kLen, 64, 9);
  }
  torch::Tensor GroupIds(int g) { return ids_.narrow(0, g * kPerGroup, kPerGroup); }

  LoraConfig config_;
  std::vector<LoraAdapter> adapters_;
  std::vector<std::vector<float>> flats_;
  torch::Tensor ids_;
};

TEST_F(StackedLoraTest, ForwardEqualsEachAdapterOnItsGroup) {
  auto st = StackedLora::Create(TinyConfig(), config_, flats_);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->groups(), kGroups);
  for (int g = 0; g < kGroups; ++g) EXPECT_EQ(st->Flatten(g), flats_[g]);
  for (const auto& p : st->Parameters()) {
    EXPECT_TRUE(p.requires_grad());
    EXPECT_EQ(p.size(0), kGroups);
  }
  model::LlamaModel m = testing::TinyModel();
  ASSERT_TRUE(st->Attach(m).ok());
  torch::NoGradGuard no_grad;
  torch::Tensor stacked = m.Forward(ids_);
  st->Detach(m);
  for (const auto& layer : m.layers) {
    for (const auto& lin : layer.proj) EXPECT_TRUE(lin.loras.empty());
  }
  torch::Tensor base = m.Forward(GroupIds(0));
  for (int g = 0; g < kGroups; ++g) {
    ASSERT_TRUE(adapters_[g].Attach(m).ok());
    torch::Tensor single = m.Forward(GroupIds(g));
    adapters_[g].Detach(m);
    torch::Tensor part = stacked.narrow(0, g * kPerGroup, kPerGroup);
    EXPECT_LT((part - single).abs().max().item<float>(), 1e-5) << "group " << g;
    if (g == 0) {
      EXPECT_GT((single - base).abs().max().item<float>(), 1e-2);
    }
  }
}

TEST_F(StackedLoraTest, GradientsStayWithinTheirGroup) {
  auto st = StackedLora::Create(TinyConfig(), config_, flats_);
  ASSERT_TRUE(st.ok());
  model::LlamaModel m = testing::TinyModel();
  ASSERT_TRUE(st->Attach(m).ok());
  // Loss on group 1's rows only: every other slice gets exactly zero gradient.
  torch::Tensor logits = m.Forward(ids_);
  model::NextTokenLoss(logits.narrow(0, kPerGroup, kPerGroup), GroupIds(1)).backward();
  for (const auto& p : st->Parameters()) {
    ASSERT_TRUE(p.grad().defined());
    EXPECT_EQ(p.grad()[0].abs().max().item<float>(), 0.0f);
    EXPECT_EQ(p.grad()[2].abs().max().item<float>(), 0.0f);
    EXPECT_GT(p.grad()[1].abs().max().item<float>(), 0.0f);
    p.mutable_grad().zero_();
  }
  // Sum of per-group mean losses: slice g's gradient equals adapter g's gradient alone.
  logits = m.Forward(ids_);
  torch::Tensor total = torch::zeros({});
  for (int g = 0; g < kGroups; ++g) {
    total = total + model::NextTokenLoss(logits.narrow(0, g * kPerGroup, kPerGroup), GroupIds(g));
  }
  total.backward();
  st->Detach(m);
  std::vector<torch::Tensor> stacked = st->Parameters();
  for (int g = 0; g < kGroups; ++g) {
    adapters_[g].SetTrainable(true);
    ASSERT_TRUE(adapters_[g].Attach(m).ok());
    model::NextTokenLoss(m.Forward(GroupIds(g)), GroupIds(g)).backward();
    adapters_[g].Detach(m);
    std::vector<torch::Tensor> single = adapters_[g].Parameters();
    ASSERT_EQ(single.size(), stacked.size());
    for (size_t i = 0; i < single.size(); ++i) {
      torch::Tensor want = single[i].grad();
      torch::Tensor got = stacked[i].grad()[g];
      EXPECT_LT((got - want).abs().max().item<float>(),
                1e-5 * std::max(1.0f, want.abs().max().item<float>()))
          << "group " << g << " param " << i;
    }
  }
}

TEST_F(StackedLoraTest, Errors) {
  EXPECT_EQ(StackedLora::Create(TinyConfig(), config_, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto flats = flats_;
  flats[1].pop_back();
  auto bad = StackedLora::Create(TinyConfig(), config_, flats);
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("group 1"), std::string::npos) << bad.status();
  EXPECT_NE(bad.status().message().find(std::to_string(flats_[1].size() - 1)), std::string::npos);
  // Built for a different architecture: Attach names the tensor and both shapes.
  model::LlamaConfig wide = TinyConfig();
  wide.intermediate_size = 40;
  auto st = LoraAdapter::Create(wide, config_, 1);
  auto other = StackedLora::Create(wide, config_, {st->Flatten(), st->Flatten()});
  ASSERT_TRUE(other.ok());
  model::LlamaModel m = testing::TinyModel();
  absl::Status s = other->Attach(m);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("down_proj.lora_A"), std::string::npos) << s;
  EXPECT_NE(s.message().find("[3, 40]"), std::string::npos) << s;
  EXPECT_NE(s.message().find("[3, 24]"), std::string::npos) << s;
}

}  // namespace
}  // namespace fedlora::adapters
