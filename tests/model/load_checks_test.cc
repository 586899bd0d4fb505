// Bad input at the model boundary: config.json values that torch would only trip over later
// (an IndexError mid-evaluation, a failed allocation) are refused at load with
// INVALID_ARGUMENT naming the file, the key, the value, the allowed range and a hint.
#include <filesystem>
#include <limits>

#include "fedlora/model/checkpoint.h"
#include "fedlora/model/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model_testutil.h"

namespace fedlora::model {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::TinyConfigJson;

// Parses `j` as "dir/config.json" and expects a refusal that names `key` and `value` and says
// what is allowed and what to do.
void ExpectRefused(const nlohmann::json& j, const std::string& key, const std::string& value) {
  auto c = ParseLlamaConfig(j, "dir/config.json");
  ASSERT_FALSE(c.ok()) << key << " = " << value << " was accepted";
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()),
              AllOf(HasSubstr("dir/config.json"), HasSubstr(key), HasSubstr(value),
                    HasSubstr("allowed"), HasSubstr("hint:")));
}

TEST(ConfigLoadChecksTest, MaxPositionEmbeddingsMustBePositive) {
  for (int64_t bad : {0, -1, -512}) {
    nlohmann::json j = TinyConfigJson();
    j["max_position_embeddings"] = bad;
    ExpectRefused(j, "max_position_embeddings", std::to_string(bad));
  }
  nlohmann::json j = TinyConfigJson();
  j["max_position_embeddings"] = 1;
  EXPECT_TRUE(ParseLlamaConfig(j, "cfg").ok());
}

TEST(ConfigLoadChecksTest, MaxPositionEmbeddingsHasAnUpperBound) {
  nlohmann::json j = TinyConfigJson();
  j["max_position_embeddings"] = kMaxPositionEmbeddings + 1;
  ExpectRefused(j, "max_position_embeddings", std::to_string(kMaxPositionEmbeddings + 1));
}

TEST(ConfigLoadChecksTest, BosTokenIdEqualToVocabSizeRefused) {
  nlohmann::json j = TinyConfigJson();
  j["bos_token_id"] = 320;  // == vocab_size: one past the last embedding row
  ExpectRefused(j, "bos_token_id", "320");
  auto c = ParseLlamaConfig(j, "cfg");
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("0..319"));
}

TEST(ConfigLoadChecksTest, NegativeEosTokenIdRefused) {
  nlohmann::json j = TinyConfigJson();
  j["eos_token_id"] = -1;
  ExpectRefused(j, "eos_token_id", "-1");
}

TEST(ConfigLoadChecksTest, EveryEosTokenIdListEntryChecked) {
  nlohmann::json j = TinyConfigJson();
  j["eos_token_id"] = {2, 320};
  ExpectRefused(j, "eos_token_id[1]", "320");
}

TEST(ConfigLoadChecksTest, BosDefaultOutsideTinyVocabularyRefused) {
  // No bos_token_id: the default 1 must still index the vocabulary.
  nlohmann::json j = TinyConfigJson();
  j.erase("bos_token_id");
  j.erase("eos_token_id");
  j["vocab_size"] = 1;
  ExpectRefused(j, "bos_token_id", "1");
}

TEST(ConfigLoadChecksTest, PadTokenIdInsideVocabularyOrNone) {
  nlohmann::json j = TinyConfigJson();
  j["pad_token_id"] = 320;
  ExpectRefused(j, "pad_token_id", "320");
  j["pad_token_id"] = -1;  // "no padding token", as some configs write it
  auto c = ParseLlamaConfig(j, "cfg");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->pad_token_id, -1);
}

TEST(ConfigLoadChecksTest, HiddenSizeNotDivisibleByHeadsRefusedWithoutHeadDim) {
  nlohmann::json j = TinyConfigJson();
  j["hidden_size"] = 66;  // 4 heads: 16.5 each
  ExpectRefused(j, "hidden_size", "66");
  auto c = ParseLlamaConfig(j, "cfg");
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("num_attention_heads"));
  // An explicit head_dim says the attention width differs on purpose (as Hugging Face allows).
  j["head_dim"] = 16;
  c = ParseLlamaConfig(j, "cfg");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 16);
}

TEST(ConfigLoadChecksTest, KvHeadsNotDividingHeadsNamesRangeAndHint) {
  nlohmann::json j = TinyConfigJson();
  j["num_key_value_heads"] = 3;
  ExpectRefused(j, "num_key_value_heads", "3");
}

TEST(ConfigLoadChecksTest, NonPositiveSizesNameRangeAndHint) {
  for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "num_key_value_heads"}) {
    nlohmann::json j = TinyConfigJson();
    j[key] = -4;
    ExpectRefused(j, key, "-4");
  }
}

TEST(ConfigLoadChecksTest, NegativeRmsNormEpsAndNonPositiveRopeThetaRefused) {
  nlohmann::json j = TinyConfigJson();
  j["rms_norm_eps"] = -1e-6;
  ExpectRefused(j, "rms_norm_eps", "-1e-06");
  j = TinyConfigJson();
  j["rope_theta"] = 0.0;
  ExpectRefused(j, "rope_theta", "0");
  j = TinyConfigJson();
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", -10000.0}};
  ExpectRefused(j, "rope_theta", "-10000");
}

// Through LoadLlamaModel: the message names the config.json of the directory.
class CheckpointLoadChecksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::FreshTempDir("load_checks");
    absl::Status s = SaveLlamaModel(LlamaModel::RandomInit(testing::TinyConfig(false), 3), dir_);
    ASSERT_TRUE(s.ok()) << s;
    config_ = LlamaConfigToJson(testing::TinyConfig(false));
  }
  void TearDown() override { fs::remove_all(dir_); }

  absl::Status LoadWith(const nlohmann::json& config) {
    testing::WriteConfigJson(dir_, config);
    return LoadLlamaModel(dir_).status();
  }

  std::string dir_;
  nlohmann::json config_;
};

TEST_F(CheckpointLoadChecksTest, ZeroMaxPositionEmbeddingsRefused) {
  config_["max_position_embeddings"] = 0;
  absl::Status s = LoadWith(config_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr((fs::path(dir_) / "config.json").string()),
                                              HasSubstr("max_position_embeddings = 0")));
}

TEST_F(CheckpointLoadChecksTest, BosTokenIdAtVocabSizeRefused) {
  config_["bos_token_id"] = 50;
  absl::Status s = LoadWith(config_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              AllOf(HasSubstr("config.json"), HasSubstr("bos_token_id = 50"), HasSubstr("0..49")));
}

// Refused from the weights before the model is built (which would allocate every layer).
TEST_F(CheckpointLoadChecksTest, MoreLayersThanTheWeightsHoldRefused) {
  config_["num_hidden_layers"] = int64_t{1} << 40;
  absl::Status s = LoadWith(config_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              AllOf(HasSubstr("config.json"), HasSubstr("num_hidden_layers = 1099511627776"),
                    HasSubstr("1..2"), HasSubstr("model.safetensors"), HasSubstr("hint:")));
  config_["num_hidden_layers"] = 3;
  s = LoadWith(config_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("num_hidden_layers = 3"));
}

// A head_dim the weights contradict is a shape error before the RoPE tables are built.
TEST_F(CheckpointLoadChecksTest, HeadDimContradictingWeightsIsShapeError) {
  config_["head_dim"] = int64_t{1} << 40;
  absl::Status s = LoadWith(config_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr("q_proj"), HasSubstr("[16, 16]")));
}

TEST_F(CheckpointLoadChecksTest, ValidConfigStillLoads) {
  auto m = LoadLlamaModel(dir_);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->config().num_hidden_layers, 2);
}

// NaN or Inf in the base weights is refused at load, naming the tensor; a clean model loads.
TEST(NonFiniteWeightsTest, RefusedAtLoadNamingTheTensor) {
  const std::string dir = testing::FreshTempDir("nan_weights");
  LlamaModel m = LlamaModel::RandomInit(testing::TinyConfig(/*tied=*/true), 1);
  ASSERT_TRUE(SaveLlamaModel(m, dir).ok());
  ASSERT_TRUE(LoadLlamaModel(dir).ok());
  for (auto& [name, t] : m.NamedParameters()) {
    if (name == "model.layers.1.mlp.down_proj.weight") {
      torch::NoGradGuard g;
      t->view(-1)[5] = std::numeric_limits<float>::infinity();
    }
  }
  ASSERT_TRUE(SaveLlamaModel(m, dir).ok());
  auto r = LoadLlamaModel(dir);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()),
              AllOf(HasSubstr("model.layers.1.mlp.down_proj.weight"), HasSubstr("non-finite"),
                    HasSubstr("flat index 5"), HasSubstr("hint:")));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fedlora::model
