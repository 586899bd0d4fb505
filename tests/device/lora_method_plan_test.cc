// The device's side of a task's LoRA method: what it trains from, what it sends, and (FedSA)
// the personal B it keeps in its state folder; a method it does not know is refused before
// anything is charged or downloaded.
#include "fedlora/device/lora_method_plan.h"

#include <filesystem>

#include "fedlora/common/ed25519.h"
#include "fedlora/common/private_file.h"
#include "fedlora/device/participation.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"

namespace fedlora::device {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Two slots: (A 6, B 4), (A 6, B 2); A holds 1.0, B 2.0.
AdapterBlob Global() {
  AdapterBlob g;
  g.lora = {{"r", 2}};
  g.base_model_sha256 = std::string(64, 'b');
  g.slots = {{6, 4}, {6, 2}};
  for (const auto& [a, b] : g.slots) {
    g.values.insert(g.values.end(), a, 1.0f);
    g.values.insert(g.values.end(), b, 2.0f);
  }
  return g;
}

std::string FreshDir(const std::string& name) {
  const fs::path d = fs::path(::testing::TempDir()) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

TEST(LoraMethodPlanTest, FedsaSendsOnlyAAndKeepsItsOwnBForTheNextRound) {
  const std::string dir = FreshDir("fedsa_plan");
  const AdapterBlob g = Global();
  auto plan = PlanMethod(LoraMethod::kFedSa, g, g.slots, dir);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->start, g.values);  // no personal B yet: the global one
  EXPECT_EQ(plan->shared.size(), 12u);
  EXPECT_EQ(plan->personal.size(), 6u);
  // A trained by +0.5, B by a value no A carries (-7 + position).
  std::vector<float> delta(g.values.size(), 0.5f);
  for (size_t j : plan->personal) delta[j] = -7.0f + j;
  auto sent = FinishMethod(*plan, g, delta, dir);
  ASSERT_TRUE(sent.ok()) << sent.status();
  ASSERT_EQ(sent->size(), 12u);              // A only
  for (float v : *sent) EXPECT_EQ(v, 0.5f);  // nothing of B
  // The trained B is on disk and the next round starts from it.
  ASSERT_TRUE(fs::exists(PersonalBPath(dir)));
  EXPECT_EQ(fs::status(PersonalBPath(dir)).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);  // learned from the user's text
  auto next = PlanMethod(LoraMethod::kFedSa, g, g.slots, dir);
  ASSERT_TRUE(next.ok()) << next.status();
  for (size_t j : next->personal) EXPECT_EQ(next->start[j], 2.0f - 7.0f + j);
  for (size_t j : next->shared) EXPECT_EQ(next->start[j], 1.0f);
  // A B made for another adapter is refused, naming the file.
  AdapterBlob other = g;
  other.lora = {{"r", 4}};
  auto refused = PlanMethod(LoraMethod::kFedSa, other, other.slots, dir);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("personal_b.blob"));
  // A damaged file is DATA_LOSS, not a silent fresh start.
  ASSERT_TRUE(
      WriteFileWithMode(PersonalBPath(dir), "not a blob", 0600, ExistingFile::kReplace).ok());
  EXPECT_EQ(PlanMethod(LoraMethod::kFedSa, g, g.slots, dir).status().code(),
            absl::StatusCode::kDataLoss);
  fs::remove_all(dir);
}

TEST(LoraMethodPlanTest, FfaFreezesAAndSendsOnlyB) {
  const AdapterBlob g = Global();
  auto plan = PlanMethod(LoraMethod::kFfa, g, g.slots, FreshDir("ffa_plan"));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->freeze_a);
  EXPECT_EQ(plan->shared, (std::vector<size_t>{6, 7, 8, 9, 16, 17}));
  // A layout that is not what the device's model makes is refused.
  auto wrong = PlanMethod(LoraMethod::kFfa, g, {{4, 6}, {6, 2}}, "");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition);
  // So is a blob without a layout.
  AdapterBlob bare = g;
  bare.slots.clear();
  EXPECT_EQ(PlanMethod(LoraMethod::kFfa, bare, g.slots, "").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(LoraMethodPlanTest, AnUnknownMethodIsRefusedWithAClearError) {
  v1::Task task;
  task.set_lora_method(static_cast<v1::LoraMethod>(9));
  auto m = TaskLoraMethod(task);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(m.status().message(), HasSubstr("does not know"));
  task.set_lora_method(v1::LORA_METHOD_FEDSA);
  EXPECT_EQ(*TaskLoraMethod(task), LoraMethod::kFedSa);
}

}  // namespace
}  // namespace fedlora::device
