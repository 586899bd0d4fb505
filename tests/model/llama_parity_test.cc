// Parity with Hugging Face transformers on the tiny Llama fixture in ../shared.
#include <torch/types.h>
#include <torch/utils.h>

#include <filesystem>
#include <fstream>

#include "fedlora/model/checkpoint.h"
#include "fedlora/model/tokenizer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace fedlora::model {
namespace {

std::string FixtureDir() { return std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama"; }

class LlamaParityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(FixtureDir() + "/reference.json")) {
      GTEST_SKIP() << "shared fixtures absent";
    }
    std::ifstream in(FixtureDir() + "/reference.json");
    reference_ = nlohmann::json::parse(in);
    auto model = LoadLlamaModel(FixtureDir() + "/base");
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    auto tok = Tokenizer::Load(FixtureDir() + "/base/tokenizer.model",
                               model_->config().bos_token_id, model_->config().eos_token_id);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = std::move(*tok);
  }

  nlohmann::json reference_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(LlamaParityTest, TokenIdsMatchReference) {
  for (const auto& c : reference_["cases"]) {
    std::vector<int64_t> ids = tokenizer_->EncodeWithBos(c["text"].get<std::string>());
    EXPECT_EQ(ids, c["ids"].get<std::vector<int64_t>>());
  }
}

TEST_F(LlamaParityTest, NllAndLogitsMatchReference) {
  torch::NoGradGuard no_grad;
  for (const auto& c : reference_["cases"]) {
    auto ids_vec = c["ids"].get<std::vector<int64_t>>();
    torch::Tensor ids = torch::tensor(ids_vec, torch::kInt64).unsqueeze(0);
    torch::Tensor logits = model_->Forward(ids);
    double nll = NextTokenLoss(logits, ids).item<double>();
    EXPECT_NEAR(nll, c["nll_base"].get<double>(), 1e-4);
    auto first = c["logits_base_first"].get<std::vector<float>>();
    auto last = c["logits_base_last"].get<std::vector<float>>();
    for (size_t i = 0; i < first.size(); ++i) {
      EXPECT_NEAR(logits[0][0][i].item<float>(), first[i], 1e-3) << "first position, logit " << i;
      EXPECT_NEAR(logits[0][-1][i].item<float>(), last[i], 1e-3) << "last position, logit " << i;
    }
  }
}

TEST_F(LlamaParityTest, KvCacheDecodingMatchesFullForward) {
  torch::NoGradGuard no_grad;
  auto ids_vec = reference_["cases"][0]["ids"].get<std::vector<int64_t>>();
  torch::Tensor ids = torch::tensor(ids_vec, torch::kInt64).unsqueeze(0).narrow(1, 0, 20);
  torch::Tensor full = model_->Forward(ids);
  KvCache cache;
  ForwardOptions opts;
  opts.cache = &cache;
  torch::Tensor prefix = model_->Forward(ids.narrow(1, 0, 12), opts);
  EXPECT_TRUE(torch::allclose(prefix, full.narrow(1, 0, 12), 1e-4, 1e-4));
  for (int64_t t = 12; t < 20; ++t) {
    torch::Tensor step = model_->Forward(ids.narrow(1, t, 1), opts);
    EXPECT_TRUE(torch::allclose(step[0][0], full[0][t], 1e-4, 1e-4)) << "position " << t;
  }
  EXPECT_EQ(cache.length(), 20);
}

TEST_F(LlamaParityTest, PaddedBatchMatchesUnpaddedRows) {
  torch::NoGradGuard no_grad;
  auto a = reference_["cases"][0]["ids"].get<std::vector<int64_t>>();
  auto b = reference_["cases"][1]["ids"].get<std::vector<int64_t>>();
  a.resize(15);
  b.resize(9);
  // Right-pad b to 15 tokens.
  std::vector<int64_t> b_pad = b, mask_b(15, 0);
  b_pad.resize(15, 0);
  for (int i = 0; i < 9; ++i) mask_b[i] = 1;
  torch::Tensor ids = torch::stack({torch::tensor(a), torch::tensor(b_pad)});
  torch::Tensor mask = torch::stack({torch::ones({15}, torch::kInt64), torch::tensor(mask_b)});
  ForwardOptions opts;
  opts.attention_mask = mask;
  torch::Tensor batched = model_->Forward(ids, opts);
  torch::Tensor single_a = model_->Forward(torch::tensor(a).unsqueeze(0));
  torch::Tensor single_b = model_->Forward(torch::tensor(b).unsqueeze(0));
  EXPECT_TRUE(torch::allclose(batched[0], single_a[0], 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(batched[1].narrow(0, 0, 9), single_b[0], 1e-4, 1e-4));
  EXPECT_FALSE(torch::isnan(batched).any().item<bool>());
}

}  // namespace
}  // namespace fedlora::model
