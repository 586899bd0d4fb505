// coordinator.json carries the LoRA method and the server optimizer (with its betas and eps).
#include "fedlora/coordinator/coordinator_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

using ::testing::HasSubstr;

// A valid recipe plus `extra`.
nlohmann::json With(nlohmann::json extra) {
  nlohmann::json j = {
      {"goal", 2},   {"population", 4}, {"sampling_rate", 0.5}, {"noise_multiplier", 1},
      {"clip", 0.5}, {"delta", 1e-5}};
  j.update(extra);
  return j;
}

TEST(CoordinatorConfigTest, MethodAndServerOptimizerRoundTrip) {
  auto defaults = CoordinatorOptionsFromJson(With(nlohmann::json::object()));
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->lora_method, LoraMethod::kLora);
  EXPECT_EQ(defaults->optimizer.kind, ServerOptimizerKind::kFedAvg);

  nlohmann::json j = {{"lora_method", "fedsa"},
                      {"server_optimizer", "fedyogi"},
                      {"server_beta1", 0.8},
                      {"server_beta2", 0.95},
                      {"server_eps", 0.01}};
  auto o = CoordinatorOptionsFromJson(With(j));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->lora_method, LoraMethod::kFedSa);
  EXPECT_EQ(o->optimizer.kind, ServerOptimizerKind::kFedYogi);
  EXPECT_DOUBLE_EQ(o->optimizer.beta1, 0.8);
  EXPECT_DOUBLE_EQ(o->optimizer.beta2, 0.95);
  EXPECT_DOUBLE_EQ(o->optimizer.eps, 0.01);
  const nlohmann::json back = CoordinatorOptionsToJson(*o);
  EXPECT_EQ(back["lora_method"], "fedsa");
  EXPECT_EQ(back["server_optimizer"], "fedyogi");
}

TEST(CoordinatorConfigTest, MaxShardSizeRoundTripsAndIsValidated) {
  auto o = CoordinatorOptionsFromJson(With({{"max_shard_size", 500}}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->recipe.max_shard_size, 500);
  EXPECT_EQ(CoordinatorOptionsToJson(*o)["max_shard_size"], 500);
  EXPECT_EQ(CoordinatorOptionsFromJson(With(nlohmann::json::object()))->recipe.max_shard_size, 0);
  auto bad = CoordinatorOptionsFromJson(With({{"max_shard_size", 2}}));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("max_shard_size"));
}

TEST(CoordinatorConfigTest, BadMethodOrOptimizerNamesTheKey) {
  auto m = CoordinatorOptionsFromJson(With({{"lora_method", "qlora"}}));
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("lora_method"));
  auto o = CoordinatorOptionsFromJson(With({{"server_optimizer", "sgd"}}));
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(o.status().message(), HasSubstr("server_optimizer"));
  auto b = CoordinatorOptionsFromJson(With({{"server_beta2", 1.0}}));
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(b.status().message(), HasSubstr("server_beta2"));
}

}  // namespace
}  // namespace fedlora::coordinator
