// Parity with Hugging Face PEFT on the tiny Llama fixture in ../shared: the reference adapter
// attached or merged gives the NLL and logits PEFT computed, and save/load is bit-exact.
#include <torch/types.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "adapters/lora_testutil.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/io/safetensors.h"
#include "fedlora/model/checkpoint.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace fedlora::adapters {
namespace {

std::string FixtureDir() { return std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama"; }

class PeftParityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(FixtureDir() + "/reference.json")) {
      GTEST_SKIP() << "shared fixtures absent";
    }
    std::ifstream in(FixtureDir() + "/reference.json");
    reference_ = nlohmann::json::parse(in);
    auto model = model::LoadLlamaModel(FixtureDir() + "/base");
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    auto adapter = LoraAdapter::LoadPeft(FixtureDir() + "/adapter");
    ASSERT_TRUE(adapter.ok()) << adapter.status();
    adapter_ = std::make_unique<LoraAdapter>(std::move(*adapter));
  }

  torch::Tensor Ids(int c) {
    return torch::tensor(reference_["cases"][c]["ids"].get<std::vector<int64_t>>(), torch::kInt64)
        .unsqueeze(0);
  }
  double Nll(int c) {
    torch::NoGradGuard no_grad;
    torch::Tensor ids = Ids(c);
    return model::NextTokenLoss(model_->Forward(ids), ids).item<double>();
  }

  nlohmann::json reference_;
  std::unique_ptr<model::LlamaModel> model_;
  std::unique_ptr<LoraAdapter> adapter_;
};

TEST_F(PeftParityTest, ConfigMatchesFixture) {
  const LoraConfig& c = adapter_->config();
  EXPECT_EQ(c.rank, reference_["config"]["r"].get<int>());
  EXPECT_DOUBLE_EQ(c.alpha, reference_["config"]["alpha"].get<double>());
  EXPECT_EQ(c.targets, (std::vector<model::Proj>{model::Proj::kQ, model::Proj::kV}));
  EXPECT_TRUE(c.layers.empty());
  EXPECT_EQ(adapter_->slots().size(), 4u);  // 2 layers x {q, v}
  EXPECT_TRUE(adapter_->Validate(*model_).ok());
}

TEST_F(PeftParityTest, AttachedAdapterMatchesPeft) {
  ASSERT_TRUE(adapter_->Attach(*model_).ok());
  torch::NoGradGuard no_grad;
  for (size_t c = 0; c < reference_["cases"].size(); ++c) {
    const auto& ref = reference_["cases"][c];
    torch::Tensor ids = Ids(c);
    torch::Tensor logits = model_->Forward(ids);
    EXPECT_NEAR(model::NextTokenLoss(logits, ids).item<double>(), ref["nll_adapter"].get<double>(),
                1e-4)
        << "case " << c;
    auto last = ref["logits_adapter_last"].get<std::vector<float>>();
    ASSERT_FALSE(last.empty());
    torch::Tensor got = logits[0][-1].narrow(0, 0, static_cast<int64_t>(last.size()));
    torch::Tensor want = torch::tensor(last, torch::kFloat);
    EXPECT_LE((got - want).abs().max().item<float>(), 1e-3) << "case " << c;
  }
  adapter_->Detach(*model_);
  for (size_t c = 0; c < reference_["cases"].size(); ++c) {
    EXPECT_NEAR(Nll(c), reference_["cases"][c]["nll_base"].get<double>(), 1e-4) << "case " << c;
  }
}

TEST_F(PeftParityTest, MergeMatchesPeftAndUnmergeRestoresBase) {
  // Merging must not write into the (read-only, mmapped) base weight.
  torch::Tensor old_q = model_->layers[0].Get(model::Proj::kQ).weight;
  torch::Tensor old_q_copy = old_q.clone();
  ASSERT_TRUE(adapter_->Merge(*model_).ok());
  EXPECT_TRUE(torch::equal(old_q, old_q_copy));
  EXPECT_FALSE(model_->layers[0].Get(model::Proj::kQ).weight.is_same(old_q));
  EXPECT_TRUE(model_->layers[0].Get(model::Proj::kQ).loras.empty());
  EXPECT_NEAR(Nll(0), reference_["nll_merged_case0"].get<double>(), 1e-4);
  EXPECT_NEAR(Nll(1), reference_["cases"][1]["nll_adapter"].get<double>(), 1e-4);
  ASSERT_TRUE(adapter_->Unmerge(*model_).ok());
  for (size_t c = 0; c < reference_["cases"].size(); ++c) {
    EXPECT_NEAR(Nll(c), reference_["cases"][c]["nll_base"].get<double>(), 1e-4) << "case " << c;
  }
  EXPECT_LE((model_->layers[0].Get(model::Proj::kQ).weight - old_q).abs().max().item<float>(),
            1e-6);
}

TEST_F(PeftParityTest, MergeWhileAttachedIsRefused) {
  ASSERT_TRUE(adapter_->Attach(*model_).ok());
  absl::Status s = adapter_->Merge(*model_);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(adapter_->Attach(*model_).code(), absl::StatusCode::kFailedPrecondition);
}

void ExpectBitExact(const LoraAdapter& a, const LoraAdapter& b) {
  ASSERT_EQ(a.slots().size(), b.slots().size());
  for (size_t i = 0; i < a.slots().size(); ++i) {
    const auto& x = a.slots()[i];
    const auto& y = b.slots()[i];
    EXPECT_EQ(x.layer, y.layer);
    EXPECT_EQ(x.proj, y.proj);
    for (auto [s, t] : {std::pair(x.A, y.A), std::pair(x.B, y.B)}) {
      ASSERT_TRUE(s.sizes().equals(t.sizes()));
      torch::Tensor sc = s.contiguous(), tc = t.contiguous();
      EXPECT_EQ(std::memcmp(sc.data_ptr<float>(), tc.data_ptr<float>(), sc.numel() * 4), 0)
          << "slot " << i;
    }
  }
}

TEST_F(PeftParityTest, SaveLoadRoundTripIsBitExact) {
  const std::string dir = testing::TempDir("roundtrip");
  ASSERT_TRUE(adapter_->SavePeft(dir).ok());
  auto again = LoraAdapter::LoadPeft(dir);
  ASSERT_TRUE(again.ok()) << again.status();
  ExpectBitExact(*adapter_, *again);
  EXPECT_EQ(again->config().ToPeftJson(), adapter_->config().ToPeftJson());
  // The file carries PEFT's names and shapes, F32.
  auto file = io::SafetensorsFile::Open(dir + "/adapter_model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  const io::TensorView* v =
      (*file)->Find("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->dtype, io::DType::kF32);
  EXPECT_EQ(v->shape, (std::vector<int64_t>{32, 4}));
  std::filesystem::remove_all(dir);
}

TEST_F(PeftParityTest, AcceptsDefaultAdapterNames) {
  // Same tensors under PEFT's ".lora_A.default.weight" names.
  const std::string dir = testing::TempDir("default_names");
  std::filesystem::copy_file(FixtureDir() + "/adapter/adapter_config.json",
                             dir + "/adapter_config.json");
  auto src = io::SafetensorsFile::Open(FixtureDir() + "/adapter/adapter_model.safetensors");
  ASSERT_TRUE(src.ok()) << src.status();
  std::vector<io::TensorView> views = (*src)->tensors();
  for (auto& v : views) {
    const size_t at = v.name.rfind(".weight");
    v.name = v.name.substr(0, at) + ".default.weight";
  }
  ASSERT_TRUE(io::WriteSafetensors(dir + "/adapter_model.safetensors", views).ok());
  auto loaded = LoraAdapter::LoadPeft(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectBitExact(*adapter_, *loaded);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fedlora::adapters
