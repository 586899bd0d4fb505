// LoraAdapter on a tiny random model: init, flat layout, deltas, freezing, attach/detach,
// merging, several adapters at once.
#include "fedlora/adapters/lora_adapter.h"

#include <torch/types.h>

#include <cmath>

#include "adapters/lora_testutil.h"
#include "gtest/gtest.h"

namespace fedlora::adapters {
namespace {

using model::Proj;
using testing::RandomAdapter;
using testing::RandomIds;
using testing::TinyConfig;
using testing::TinyModel;

torch::Tensor Logits(const model::LlamaModel& m, const torch::Tensor& ids) {
  torch::NoGradGuard no_grad;
  return m.Forward(ids);
}

float MaxDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<float>();
}

TEST(LoraAdapterTest, PeftInitIsKaimingUniformAndZeroB) {
  LoraConfig c;
  c.rank = 4;
  c.targets = {Proj::kV, Proj::kDown};  // unsorted on purpose
  auto a = LoraAdapter::Create(TinyConfig(), c, 3);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->slots().size(), 4u);
  EXPECT_EQ(a->config().targets, (std::vector<Proj>{Proj::kV, Proj::kDown}));
  EXPECT_EQ(a->slots()[0].proj, Proj::kV);
  EXPECT_EQ(a->slots()[1].proj, Proj::kDown);
  EXPECT_EQ(a->slots()[2].layer, 1);
  for (const auto& s : a->slots()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(s.A.size(1)));
    EXPECT_LE(s.A.abs().max().item<double>(), bound);
    EXPECT_GT(s.A.abs().max().item<double>(), 0.5 * bound);
    EXPECT_EQ(s.B.abs().max().item<float>(), 0.0f);
    EXPECT_FALSE(s.A.requires_grad());
  }
  EXPECT_EQ(a->slots()[1].A.sizes(), (std::vector<int64_t>{4, 24}));  // down: in = 24
  EXPECT_EQ(a->slots()[1].B.sizes(), (std::vector<int64_t>{16, 4}));
  // Deterministic per seed, different across seeds.
  auto same = LoraAdapter::Create(TinyConfig(), c, 3);
  auto other = LoraAdapter::Create(TinyConfig(), c, 4);
  EXPECT_EQ(same->Flatten(), a->Flatten());
  EXPECT_NE(other->Flatten(), a->Flatten());
  // With B = 0 a fresh adapter leaves the model's output unchanged.
  model::LlamaModel m = TinyModel();
  torch::Tensor ids = RandomIds(2, 7, 64, 1);
  torch::Tensor before = Logits(m, ids);
  ASSERT_TRUE(a->Attach(m).ok());
  EXPECT_EQ(MaxDiff(Logits(m, ids), before), 0.0f);
}

TEST(LoraAdapterTest, GaussianInitAndScaling) {
  LoraConfig c;
  c.rank = 8;
  c.alpha = 32;
  c.init = LoraConfig::Init::kGaussian;
  c.targets = {Proj::kGate, Proj::kUp};
  EXPECT_DOUBLE_EQ(c.Scaling(), 4.0);
  auto a = LoraAdapter::Create(TinyConfig(), c, 5);
  ASSERT_TRUE(a.ok()) << a.status();
  torch::Tensor all = torch::cat({a->slots()[0].A.flatten(), a->slots()[1].A.flatten(),
                                  a->slots()[2].A.flatten(), a->slots()[3].A.flatten()});
  EXPECT_NEAR(all.std().item<double>(), 1.0 / 8, 0.02);  // std 1/r, 512 samples
  c.use_rslora = true;
  EXPECT_NEAR(c.Scaling(), 32 / std::sqrt(8.0), 1e-12);
}

TEST(LoraAdapterTest, LayerSelectionAndErrors) {
  LoraConfig c;
  c.layers = {1};
  auto a = LoraAdapter::Create(TinyConfig(), c, 1);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->slots().size(), 2u);
  EXPECT_EQ(a->slots()[0].layer, 1);
  c.layers = {0, 2};
  auto bad = LoraAdapter::Create(TinyConfig(), c, 1);
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("layer index 2"), std::string::npos) << bad.status();
  EXPECT_NE(bad.status().message().find("2 layers"), std::string::npos) << bad.status();
  c.layers = {};
  c.rank = 0;
  EXPECT_EQ(LoraAdapter::Create(TinyConfig(), c, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LoraAdapterTest, FlattenLayoutAndRoundTrip) {
  LoraConfig c;
  c.rank = 2;
  c.targets = {Proj::kQ, Proj::kV, Proj::kO};
  LoraAdapter a = RandomAdapter(TinyConfig(), c, 11);
  // q: A [2,16] B [16,2]; v: A [2,16] B [8,2]; o: A [2,16] B [16,2] -> 176 per layer.
  EXPECT_EQ(a.NumParameters(), 2 * (32 + 32 + 32 + 16 + 32 + 32));
  std::vector<float> flat = a.Flatten();
  ASSERT_EQ(static_cast<int64_t>(flat.size()), a.NumParameters());
  // Layer 0 q.A row-major first, then q.B, then v.A.
  EXPECT_EQ(flat[0], a.slots()[0].A[0][0].item<float>());
  EXPECT_EQ(flat[17], a.slots()[0].A[1][1].item<float>());
  EXPECT_EQ(flat[32 + 3], a.slots()[0].B[1][1].item<float>());
  EXPECT_EQ(flat[64], a.slots()[1].A[0][0].item<float>());
  EXPECT_EQ(a.slots()[3].layer, 1);
  EXPECT_EQ(flat[176], a.slots()[3].A[0][0].item<float>());

  std::vector<float> other = testing::RandomFloats(flat.size(), 1.0, 99);
  ASSERT_TRUE(a.Unflatten(other.data(), other.size()).ok());
  EXPECT_EQ(a.Flatten(), other);
  absl::Status s = a.Unflatten(other.data(), other.size() - 1);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(std::to_string(other.size() - 1)), std::string::npos) << s;
  EXPECT_NE(s.message().find(std::to_string(other.size())), std::string::npos) << s;
}

TEST(LoraAdapterTest, CloneIsDeepAndDeltasRoundTrip) {
  LoraConfig c;
  c.targets = {Proj::kK, Proj::kUp};
  LoraAdapter before = RandomAdapter(TinyConfig(), c, 21);
  LoraAdapter after = before.Clone();
  std::vector<float> step = testing::RandomFloats(before.NumParameters(), 0.1, 5);
  ASSERT_TRUE(ApplyDelta(after, step.data(), step.size()).ok());
  EXPECT_NE(after.Flatten(), before.Flatten());  // the clone does not share storage

  auto delta = AdapterDelta(after, before);
  ASSERT_TRUE(delta.ok()) << delta.status();
  ASSERT_EQ(delta->size(), step.size());
  for (size_t i = 0; i < step.size(); ++i) ASSERT_NEAR((*delta)[i], step[i], 1e-6) << i;

  // Half the delta twice gives the full delta.
  LoraAdapter walked = before.Clone();
  ASSERT_TRUE(ApplyDelta(walked, delta->data(), delta->size(), 0.5f).ok());
  ASSERT_TRUE(ApplyDelta(walked, delta->data(), delta->size(), 0.5f).ok());
  std::vector<float> w = walked.Flatten(), x = after.Flatten();
  for (size_t i = 0; i < w.size(); ++i) ASSERT_NEAR(w[i], x[i], 1e-6) << i;

  EXPECT_EQ(ApplyDelta(walked, delta->data(), delta->size() + 1).code(),
            absl::StatusCode::kInvalidArgument);
  LoraConfig c2 = c;
  c2.rank = 4;
  LoraAdapter different = RandomAdapter(TinyConfig(), c2, 1);
  EXPECT_EQ(AdapterDelta(different, before).status().code(), absl::StatusCode::kInvalidArgument);
  model::LlamaConfig wider = TinyConfig();
  wider.intermediate_size = 32;
  LoraAdapter other_base = RandomAdapter(wider, c, 1);
  auto mismatch = AdapterDelta(other_base, before);
  ASSERT_EQ(mismatch.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(mismatch.status().message().find("[24, 8]"), std::string::npos) << mismatch.status();
  EXPECT_NE(mismatch.status().message().find("[32, 8]"), std::string::npos) << mismatch.status();
}

TEST(LoraAdapterTest, BaseStaysFrozenAndOnlyAdapterGetsGradients) {
  model::LlamaModel m = TinyModel();
  LoraConfig c;
  c.targets = {Proj::kQ, Proj::kV, Proj::kGate};
  c.dropout = 0.1;
  auto a = LoraAdapter::Create(TinyConfig(), c, 2);
  ASSERT_TRUE(a.ok());
  a->SetTrainable(true);
  ASSERT_TRUE(a->Attach(m).ok());
  torch::Tensor ids = RandomIds(2, 9, 64, 3);
  model::ForwardOptions opts;
  opts.training = true;
  model::NextTokenLoss(m.Forward(ids, opts), ids).backward();
  for (auto& [name, t] : m.NamedParameters()) {
    EXPECT_FALSE(t->requires_grad()) << name;
    EXPECT_FALSE(t->grad().defined()) << name;
  }
  std::vector<torch::Tensor> params = a->Parameters();
  ASSERT_EQ(params.size(), 12u);
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(params[i].requires_grad());
    EXPECT_TRUE(params[i].is_leaf());
    ASSERT_TRUE(params[i].grad().defined()) << i;
    // PEFT init: B = 0, so A's gradient (through B) is zero and B's is not.
    const float g = params[i].grad().abs().max().item<float>();
    if (i % 2 == 0) {
      EXPECT_EQ(g, 0.0f) << i;
    } else {
      EXPECT_GT(g, 0.0f) << i;
    }
  }
}

TEST(LoraAdapterTest, InPlaceUpdatesReachTheAttachedModel) {
  // Attach before SetTrainable, and inside no_grad: the views must still carry gradients and
  // see optimizer-style in-place updates.
  model::LlamaModel m = TinyModel();
  LoraConfig c;
  LoraAdapter a = RandomAdapter(TinyConfig(), c, 8);
  {
    torch::NoGradGuard no_grad;
    ASSERT_TRUE(a.Attach(m).ok());
  }
  a.SetTrainable(true);
  torch::Tensor ids = RandomIds(1, 8, 64, 4);
  torch::Tensor loss = model::NextTokenLoss(m.Forward(ids), ids);
  loss.backward();
  for (const auto& p : a.Parameters()) {
    ASSERT_TRUE(p.grad().defined());
    EXPECT_GT(p.grad().abs().max().item<float>(), 0.0f);
  }
  {
    torch::NoGradGuard no_grad;
    for (auto& p : a.Parameters()) p.sub_(p.grad() * 0.5);  // SGD step
  }
  torch::Tensor loss2 = model::NextTokenLoss(m.Forward(ids), ids);
  EXPECT_LT(loss2.item<float>(), loss.item<float>());
  // Second backward through the same attachment works (no stale graph).
  for (auto& p : a.Parameters()) p.mutable_grad().zero_();
  loss2.backward();
  EXPECT_GT(a.Parameters()[1].grad().abs().max().item<float>(), 0.0f);
  // Unflatten to zero B: the model returns to the base output.
  std::vector<float> flat = a.Flatten();
  for (size_t i = 0, off = 0; i < a.slots().size(); ++i) {
    off += a.slots()[i].A.numel();
    for (int64_t k = 0; k < a.slots()[i].B.numel(); ++k) flat[off + k] = 0;
    off += a.slots()[i].B.numel();
  }
  ASSERT_TRUE(a.Unflatten(flat.data(), flat.size()).ok());
  model::LlamaModel plain = TinyModel();
  EXPECT_LT(MaxDiff(Logits(m, ids), Logits(plain, ids)), 1e-6);
}

TEST(LoraAdapterTest, AttachDetachAndMergeAgree) {
  model::LlamaModel m = TinyModel();
  torch::Tensor ids = RandomIds(2, 10, 64, 6);
  const torch::Tensor base = Logits(m, ids);
  LoraConfig c;
  c.targets = {Proj::kQ, Proj::kO, Proj::kDown};
  c.alpha = 4;
  LoraAdapter a = RandomAdapter(TinyConfig(), c, 31);
  ASSERT_TRUE(a.Attach(m).ok());
  const torch::Tensor attached = Logits(m, ids);
  EXPECT_GT(MaxDiff(attached, base), 1e-2);
  a.Detach(m);
  EXPECT_EQ(MaxDiff(Logits(m, ids), base), 0.0f);
  for (const auto& layer : m.layers) {
    for (const auto& lin : layer.proj) EXPECT_TRUE(lin.loras.empty());
  }
  a.Detach(m);  // no-op
  ASSERT_TRUE(a.Merge(m).ok());
  EXPECT_LT(MaxDiff(Logits(m, ids), attached), 1e-4);
  ASSERT_TRUE(a.Unmerge(m).ok());
  EXPECT_LT(MaxDiff(Logits(m, ids), base), 1e-4);
}

TEST(LoraAdapterTest, TwoAdaptersAddUpAndDetachIndependently) {
  model::LlamaModel m = TinyModel();
  torch::Tensor ids = RandomIds(2, 10, 64, 7);
  LoraConfig c1;
  c1.targets = {Proj::kQ, Proj::kV};
  LoraConfig c2;
  c2.rank = 3;
  c2.alpha = 5;
  c2.targets = {Proj::kV, Proj::kUp};  // overlaps on v
  LoraAdapter a = RandomAdapter(TinyConfig(), c1, 41);
  LoraAdapter b = RandomAdapter(TinyConfig(), c2, 42);

  model::LlamaModel merged = TinyModel();
  ASSERT_TRUE(a.Merge(merged).ok());
  ASSERT_TRUE(b.Merge(merged).ok());
  model::LlamaModel only_b = TinyModel();
  ASSERT_TRUE(b.Merge(only_b).ok());

  ASSERT_TRUE(a.Attach(m).ok());
  ASSERT_TRUE(b.Attach(m).ok());
  EXPECT_EQ(m.layers[0].Get(Proj::kV).loras.size(), 2u);
  EXPECT_LT(MaxDiff(Logits(m, ids), Logits(merged, ids)), 1e-4);
  a.Detach(m);  // b stays
  EXPECT_EQ(m.layers[0].Get(Proj::kV).loras.size(), 1u);
  EXPECT_LT(MaxDiff(Logits(m, ids), Logits(only_b, ids)), 1e-4);
}

}  // namespace
}  // namespace fedlora::adapters
