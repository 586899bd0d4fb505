// ParseLlamaConfig / LoadLlamaConfig / LlamaConfigToJson: what config.json keys mean and what
// is refused (rather than silently mis-modelled).
#include "fedlora/model/config.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model_testutil.h"

namespace fedlora::model {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// A minimal valid Llama config.json in Hugging Face's spelling.
constexpr auto BaseJson = testing::TinyConfigJson;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(ParseLlamaConfigTest, ReadsSizesAndDerivesHeadDim) {
  auto c = ParseLlamaConfig(BaseJson(), "cfg.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->vocab_size, 320);
  EXPECT_EQ(c->hidden_size, 64);
  EXPECT_EQ(c->intermediate_size, 176);
  EXPECT_EQ(c->num_hidden_layers, 2);
  EXPECT_EQ(c->num_attention_heads, 4);
  EXPECT_EQ(c->num_key_value_heads, 2);
  EXPECT_EQ(c->head_dim, 16);  // hidden / heads
  EXPECT_EQ(c->max_position_embeddings, 128);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->pad_token_id, -1);
}

TEST(ParseLlamaConfigTest, KvHeadsDefaultToAttentionHeads) {
  nlohmann::json j = BaseJson();
  j.erase("num_key_value_heads");
  auto c = ParseLlamaConfig(j, "cfg.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_key_value_heads, 4);
}

TEST(ParseLlamaConfigTest, HeadDimFromConfigOverridesQuotient) {
  nlohmann::json j = BaseJson();
  j["head_dim"] = 32;  // heads * head_dim != hidden (allowed, as in Hugging Face)
  auto c = ParseLlamaConfig(j, "cfg.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 32);
}

TEST(ParseLlamaConfigTest, OddHeadDimRefused) {
  nlohmann::json j = BaseJson();
  j["head_dim"] = 15;
  auto c = ParseLlamaConfig(j, "cfg.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(c.status()), HasSubstr("head_dim"));
}

TEST(ParseLlamaConfigTest, RopeThetaTopLevel) {
  nlohmann::json j = BaseJson();
  j["rope_theta"] = 500000.0;
  auto c = ParseLlamaConfig(j, "cfg.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->rope_theta, 500000.0);
}

TEST(ParseLlamaConfigTest, RopeThetaFromRopeParameters) {
  nlohmann::json j = BaseJson();
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 250000.0}};
  auto c = ParseLlamaConfig(j, "cfg.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->rope_theta, 250000.0);
}

TEST(ParseLlamaConfigTest, NullRopeScalingAccepted) {
  nlohmann::json j = BaseJson();
  j["rope_scaling"] = nullptr;  // what transformers writes for plain RoPE
  auto c = ParseLlamaConfig(j, "cfg.json");
  ASSERT_TRUE(c.ok()) << c.status();
}

// Rope scaling changes the positional encoding; loading it as plain RoPE would silently give
// different logits from Hugging Face, so it must be refused with the key and type named.
TEST(ParseLlamaConfigTest, RopeScalingLinearRefused) {
  nlohmann::json j = BaseJson();
  j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};
  auto c = ParseLlamaConfig(j, "cfg.json");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(Message(c.status()),
              AllOf(HasSubstr("cfg.json"), HasSubstr("rope_scaling"), HasSubstr("linear")));
}

TEST(ParseLlamaConfigTest, RopeScalingLegacyTypeKeyRefused) {
  nlohmann::json j = BaseJson();
  j["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
  auto c = ParseLlamaConfig(j, "cfg.json");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(Message(c.status()), AllOf(HasSubstr("rope_scaling"), HasSubstr("dynamic")));
}

TEST(ParseLlamaConfigTest, RopeParametersYarnRefused) {
  nlohmann::json j = BaseJson();
  j["rope_parameters"] = {{"rope_type", "yarn"}, {"rope_theta", 10000.0}, {"factor", 4.0}};
  auto c = ParseLlamaConfig(j, "cfg.json");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(Message(c.status()), AllOf(HasSubstr("rope_parameters"), HasSubstr("yarn")));
}

TEST(ParseLlamaConfigTest, MissingVocabSizeNamesKeyAndSource) {
  nlohmann::json j = BaseJson();
  j.erase("vocab_size");
  auto c = ParseLlamaConfig(j, "some/dir/config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(c.status()),
              AllOf(HasSubstr("vocab_size"), HasSubstr("some/dir/config.json")));
}

TEST(ParseLlamaConfigTest, IllTypedSizeNamesKey) {
  nlohmann::json j = BaseJson();
  j["hidden_size"] = "64";
  auto c = ParseLlamaConfig(j, "cfg.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(c.status()), HasSubstr("hidden_size"));
}

TEST(ParseLlamaConfigTest, NonPositiveSizeRefused) {
  nlohmann::json j = BaseJson();
  j["num_hidden_layers"] = 0;
  auto c = ParseLlamaConfig(j, "cfg.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(c.status()), HasSubstr("num_hidden_layers"));
}

TEST(ParseLlamaConfigTest, HeadsNotDivisibleByKvHeadsRefused) {
  nlohmann::json j = BaseJson();
  j["num_attention_heads"] = 4;
  j["num_key_value_heads"] = 3;
  auto c = ParseLlamaConfig(j, "cfg.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(c.status()),
              AllOf(HasSubstr("num_attention_heads"), HasSubstr("num_key_value_heads")));
}

TEST(ParseLlamaConfigTest, AttentionBiasRefused) {
  nlohmann::json j = BaseJson();
  j["attention_bias"] = true;
  auto c = ParseLlamaConfig(j, "cfg.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(c.status()), HasSubstr("attention_bias"));
  // false is what transformers writes by default and must be accepted.
  j["attention_bias"] = false;
  EXPECT_TRUE(ParseLlamaConfig(j, "cfg.json").ok());
}

TEST(ParseLlamaConfigTest, MlpBiasRefused) {
  nlohmann::json j = BaseJson();
  j["mlp_bias"] = true;
  auto c = ParseLlamaConfig(j, "cfg.json");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(Message(c.status()), HasSubstr("mlp_bias"));
}

TEST(ParseLlamaConfigTest, OtherModelTypeRefused) {
  nlohmann::json j = BaseJson();
  j["model_type"] = "gpt2";
  auto c = ParseLlamaConfig(j, "cfg.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(c.status()), AllOf(HasSubstr("model_type"), HasSubstr("gpt2")));
}

TEST(ParseLlamaConfigTest, OtherActivationRefused) {
  nlohmann::json j = BaseJson();
  j["hidden_act"] = "gelu";
  auto c = ParseLlamaConfig(j, "cfg.json");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(Message(c.status()), AllOf(HasSubstr("hidden_act"), HasSubstr("gelu")));
}

TEST(ParseLlamaConfigTest, NonObjectRefused) {
  auto c = ParseLlamaConfig(nlohmann::json::array({1, 2}), "cfg.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseLlamaConfigTest, EosTokenIdListTakesFirst) {
  nlohmann::json j = BaseJson();
  j["vocab_size"] = 128256;
  j["eos_token_id"] = {128001, 128008, 128009};  // Llama 3.x style
  auto c = ParseLlamaConfig(j, "cfg.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->eos_token_id, 128001);
}

TEST(ParseLlamaConfigTest, TieAndPadRead) {
  nlohmann::json j = BaseJson();
  j["tie_word_embeddings"] = true;
  j["pad_token_id"] = 0;
  auto c = ParseLlamaConfig(j, "cfg.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->pad_token_id, 0);
}

TEST(LlamaConfigToJsonTest, RoundTripsEveryField) {
  LlamaConfig c;
  c.vocab_size = 777;
  c.hidden_size = 96;
  c.intermediate_size = 256;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 3;
  c.head_dim = 20;  // deliberately not hidden / heads
  c.max_position_embeddings = 99;
  c.rms_norm_eps = 3e-6;
  c.rope_theta = 123456.0;
  c.tie_word_embeddings = true;
  c.bos_token_id = 5;
  c.eos_token_id = 6;
  c.pad_token_id = 7;
  nlohmann::json j = LlamaConfigToJson(c);
  EXPECT_EQ(j["model_type"], "llama");
  EXPECT_EQ(j["architectures"][0], "LlamaForCausalLM");
  // Through text, as a file would carry it.
  auto back = ParseLlamaConfig(nlohmann::json::parse(j.dump()), "roundtrip");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->vocab_size, c.vocab_size);
  EXPECT_EQ(back->hidden_size, c.hidden_size);
  EXPECT_EQ(back->intermediate_size, c.intermediate_size);
  EXPECT_EQ(back->num_hidden_layers, c.num_hidden_layers);
  EXPECT_EQ(back->num_attention_heads, c.num_attention_heads);
  EXPECT_EQ(back->num_key_value_heads, c.num_key_value_heads);
  EXPECT_EQ(back->head_dim, c.head_dim);
  EXPECT_EQ(back->max_position_embeddings, c.max_position_embeddings);
  EXPECT_DOUBLE_EQ(back->rms_norm_eps, c.rms_norm_eps);
  EXPECT_DOUBLE_EQ(back->rope_theta, c.rope_theta);
  EXPECT_EQ(back->tie_word_embeddings, c.tie_word_embeddings);
  EXPECT_EQ(back->bos_token_id, c.bos_token_id);
  EXPECT_EQ(back->eos_token_id, c.eos_token_id);
  EXPECT_EQ(back->pad_token_id, c.pad_token_id);
  EXPECT_EQ(back->NumParameters(), c.NumParameters());
}

TEST(LlamaConfigToJsonTest, NoPadTokenWhenNone) {
  LlamaConfig c;
  c.pad_token_id = -1;
  nlohmann::json j = LlamaConfigToJson(c);
  EXPECT_FALSE(j.contains("pad_token_id"));
  auto back = ParseLlamaConfig(j, "roundtrip");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->pad_token_id, -1);
}

TEST(LlamaConfigTest, NumParametersCountsTiedAndUntied) {
  LlamaConfig c;
  c.vocab_size = 10;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 4;
  c.tie_word_embeddings = true;
  // Per layer: q 8x8 + k 4x8 + v 4x8 + o 8x8 = 192; mlp 3*8*12 = 288; norms 16.
  const int64_t tied = 10 * 8 + 2 * (192 + 288 + 16) + 8;
  EXPECT_EQ(c.NumParameters(), tied);
  c.tie_word_embeddings = false;
  EXPECT_EQ(c.NumParameters(), tied + 10 * 8);
}

TEST(LoadLlamaConfigTest, MissingFileIsNotFoundNamingPath) {
  const std::string path = "/nonexistent/fedlora/config.json";
  auto c = LoadLlamaConfig(path);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(c.status()), HasSubstr(path));
}

TEST(LoadLlamaConfigTest, MalformedJsonNamesPath) {
  auto dir = std::filesystem::temp_directory_path() /
             ("fedlora_config_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "config.json").string();
  {
    std::ofstream out(path);
    out << "{\"vocab_size\": 32,";
  }
  auto c = LoadLlamaConfig(path);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(c.status()), HasSubstr(path));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fedlora::model
