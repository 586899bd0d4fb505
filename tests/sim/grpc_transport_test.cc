// `fedlora sim --transport grpc`: a real coordinator process on loopback TLS, the devices as
// its gRPC clients. The run's rounds are committed by that coordinator, the epsilon the sim
// prints is its ledger's, the final adapter is its latest version, and the process is stopped
// at the end. A config the coordinator cannot run is refused before any work.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/common/adapter_blob.h"
#include "fedlora/coordinator/run_epsilons.h"
#include "fedlora/coordinator/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testutil/cli_runner.h"

namespace fedlora::sim {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Fixture() { return std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama/base"; }

TEST(GrpcTransportTest, RoundsGoThroughARealCoordinatorProcess) {
  if (!fs::exists(Fixture())) GTEST_SKIP() << "no ../shared fixture";
  const fs::path out = fs::temp_directory_path() / ("fedlora_sim_grpc_" + std::to_string(getpid()));
  fs::remove_all(out);
  const std::string args =
      "sim --transport grpc --json --threads 2 --model " + Fixture() +
      " --devices 8 --cohort 8 --rounds 2 --out " + out.string() +
      " --set rounds.eval_users=4 --set local.steps=2 --set rounds.personalize_steps=2";
  const testing::CliResult r = testing::RunFedlora(args, fs::temp_directory_path().string());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  std::vector<nlohmann::json> lines;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] == '{') lines.push_back(nlohmann::json::parse(line));
  }
  ASSERT_EQ(lines.size(), 3u) << r.out;  // two rounds, then the summary
  const nlohmann::json& summary = lines.back();
  EXPECT_EQ(summary["rounds_completed"], 2);
  EXPECT_THAT(summary["randomness"].get<std::string>(), HasSubstr("transport grpc"));
  int committed_rounds = 0;
  for (int i = 0; i < 2; ++i) {
    if (!lines[i]["aborted"].get<bool>()) {
      ++committed_rounds;
      EXPECT_GE(lines[i]["survivors"].get<int>(), 2) << lines[i].dump();
    }
  }
  // q = 1: all eight are sampled, the minimum cohort (7) is always reached.
  EXPECT_EQ(committed_rounds, 2) << r.out;

  // The coordinator's own record.
  auto store = coordinator::OpenSqliteStore((out / "grpc" / "coordinator").string());
  ASSERT_TRUE(store.ok()) << store.status();
  auto rounds = (*store)->ListRounds();
  ASSERT_TRUE(rounds.ok());
  int store_committed = 0;
  for (const auto& rr : *rounds) store_committed += rr.state == "committed";
  EXPECT_EQ(store_committed, committed_rounds);
  auto charges = (*store)->Charges();
  ASSERT_TRUE(charges.ok());
  ASSERT_FALSE(charges->empty());
  EXPECT_DOUBLE_EQ(summary["epsilon_observers"].get<double>(), charges->back().epsilon_after);
  EXPECT_GT(summary["epsilon_observers"].get<double>(), 0);
  // Against the coordinator a device pays for its rounds without amplification: the worst
  // device's figure, recomputed from the same ledger, is never below the observers' one.
  auto eps = coordinator::ComputeRunEpsilons(**store, summary["delta"].get<double>());
  ASSERT_TRUE(eps.ok()) << eps.status();
  EXPECT_DOUBLE_EQ(summary["epsilon_coordinator"].get<double>(), eps->coordinator);
  EXPECT_GE(eps->coordinator, eps->observers);
  EXPECT_GE(summary["max_rounds_per_device"].get<int>(), 1);

  // The saved adapter is the coordinator's latest version.
  auto latest = (*store)->LatestAdapter();
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->version, 1u + committed_rounds);
  auto bytes = (*store)->ReadBlob(latest->sha256);
  ASSERT_TRUE(bytes.ok());
  auto blob = DecodeAdapterBlob(*bytes);
  ASSERT_TRUE(blob.ok());
  auto saved = adapters::LoraAdapter::LoadPeft((out / "global_adapter").string());
  ASSERT_TRUE(saved.ok()) << saved.status();
  const std::vector<float> flat = saved->Flatten();
  ASSERT_EQ(flat.size(), blob->values.size());
  double max_diff = 0;
  for (size_t i = 0; i < flat.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(double(flat[i]) - blob->values[i]));
  }
  EXPECT_EQ(max_diff, 0.0);

  // The coordinator process was stopped by the run, after serving it over TLS.
  std::ifstream log(out / "grpc" / "coordinator.out");
  std::stringstream ss;
  ss << log.rdbuf();
  EXPECT_THAT(ss.str(), HasSubstr("(TLS)"));
  EXPECT_THAT(ss.str(), HasSubstr("stopped; epsilon"));
  fs::remove_all(out);
}

TEST(GrpcTransportTest, ConfigsTheCoordinatorCannotRunAreRefusedBeforeAnyWork) {
  const fs::path out = fs::temp_directory_path() / ("fedlora_sim_grpc_bad_" + std::to_string(getpid()));
  fs::remove_all(out);
  const testing::CliResult r = testing::RunFedlora(
      "sim --transport grpc --dp central --set server.optimizer=fedadam --out " + out.string(),
      fs::temp_directory_path().string());
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("privacy.dp: must be distributed with run.transport = grpc"));
  EXPECT_THAT(r.err, HasSubstr("server.optimizer: must be fedavg"));
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("preparing model")));
  EXPECT_FALSE(fs::exists(out / "grpc"));
}

}  // namespace
}  // namespace fedlora::sim
