// Pinned privacy parameters through the CLI: `coordinator init` pins them; a run whose
// coordinator.json was edited afterwards is refused before it serves anything.
#include <csignal>
#include <filesystem>

#include "fedlora/common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testutil/cli_runner.h"
#include "testutil/process.h"

namespace fedlora {
namespace {

using ::testing::HasSubstr;

TEST(PinnedCliTest, AnEditedDeltaIsRefusedAndTheRestoredOneRuns) {
  const std::string model = std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama/base";
  if (!std::filesystem::exists(model)) GTEST_SKIP() << "no ../shared fixtures";
  const std::string dir = ::testing::TempDir() + "/pinned_cli";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto init = testing::RunFedlora(
      "coordinator init --state " + dir + "/coord --model " + model + " --tokens 1 --json", dir);
  ASSERT_EQ(init.exit_code, 0) << init.out << init.err;
  const std::string config_path = dir + "/coord/coordinator.json";
  const std::string original = *ReadFileToString(config_path);
  nlohmann::json config = nlohmann::json::parse(original);
  config["delta"] = 0.01;
  config["noise_multiplier"] = 0.3;
  ASSERT_TRUE(WriteFileAtomic(config_path, config.dump(2)).ok());

  const std::vector<std::string> run = {"coordinator", "run",         "--state",   dir + "/coord",
                                        "--listen",    "127.0.0.1:0", "--insecure"};
  auto edited = testing::StartFedlora(run, dir + "/edited");
  const int code = edited.Wait(60);
  if (code == -1) edited.Kill(SIGKILL);
  ASSERT_EQ(code, 1) << "a run with an edited delta must not serve\n" << edited.Out();
  EXPECT_THAT(edited.Err(), HasSubstr("pinned"));
  EXPECT_THAT(edited.Err(), HasSubstr("delta"));
  EXPECT_THAT(edited.Err(), HasSubstr("noise_multiplier"));
  EXPECT_THAT(edited.Err(), HasSubstr("coordinator init --state NEWDIR"));

  // With the pinned values back, a start that fails later (no TLS key) is a clean error too,
  // not a crash of the half-built server.
  ASSERT_TRUE(WriteFileAtomic(config_path, original).ok());
  auto no_tls = testing::StartFedlora({"coordinator", "run", "--state", dir + "/coord", "--listen",
                                       "127.0.0.1:0", "--tls-cert", dir + "/missing.pem"},
                                      dir + "/no_tls");
  EXPECT_EQ(no_tls.Wait(60), 1) << no_tls.Err();
  EXPECT_THAT(no_tls.Err(), HasSubstr("TLS certificate or key not readable"));

  // And the same folder serves.
  auto restored = testing::StartFedlora(run, dir + "/restored");
  EXPECT_THAT(restored.WaitForLine("listening on", 60), HasSubstr("listening on"))
      << restored.Err();
  restored.Kill(SIGTERM);
  restored.Wait(30);
}

// `coordinator init --lora-method --server-optimizer` writes and pins them: the folder's
// adapter records its slot layout, and a run with another method or optimizer is refused.
TEST(PinnedCliTest, TheLoraMethodAndServerOptimizerArePinnedAtInit) {
  const std::string model = std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama/base";
  if (!std::filesystem::exists(model)) GTEST_SKIP() << "no ../shared fixtures";
  const std::string dir = ::testing::TempDir() + "/pinned_cli_method";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto init = testing::RunFedlora("coordinator init --state " + dir + "/coord --model " + model +
                                      " --tokens 1 --lora-method ffa --server-optimizer fedadam "
                                      "--server-beta2 0.98 --json",
                                  dir);
  ASSERT_EQ(init.exit_code, 0) << init.out << init.err;
  const nlohmann::json out = nlohmann::json::parse(init.out);
  EXPECT_EQ(out["config"]["lora_method"], "ffa");
  EXPECT_EQ(out["config"]["server_optimizer"], "fedadam");
  EXPECT_DOUBLE_EQ(out["config"]["server_beta2"].get<double>(), 0.98);
  const std::string config_path = dir + "/coord/coordinator.json";
  nlohmann::json config = nlohmann::json::parse(*ReadFileToString(config_path));
  config["lora_method"] = "lora";
  config["server_optimizer"] = "fedyogi";
  ASSERT_TRUE(WriteFileAtomic(config_path, config.dump(2)).ok());
  auto edited = testing::StartFedlora(
      {"coordinator", "run", "--state", dir + "/coord", "--listen", "127.0.0.1:0", "--insecure"},
      dir + "/edited");
  const int code = edited.Wait(60);
  if (code == -1) edited.Kill(SIGKILL);
  ASSERT_EQ(code, 1) << edited.Out();
  EXPECT_THAT(edited.Err(), HasSubstr("lora_method removed"));  // pinned only when not lora
  EXPECT_THAT(edited.Err(), HasSubstr("server_optimizer \"fedadam\" -> \"fedyogi\""));
  // A method the CLI does not know is refused by the flag's check.
  auto bad = testing::RunFedlora(
      "coordinator init --state " + dir + "/bad --model " + model + " --lora-method qlora", dir);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("qlora"));
}

}  // namespace
}  // namespace fedlora
