// The fixture of the process-level tests: a real `fedlora coordinator run` and real `fedlora
// device run` processes on loopback, with bounded time (state under ::testing::TempDir()).
#ifndef FEDLORA_TESTS_COORDINATOR_PROCESS_TESTUTIL_H_
#define FEDLORA_TESTS_COORDINATOR_PROCESS_TESTUTIL_H_

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testutil/cli_runner.h"
#include "testutil/process.h"

namespace fedlora {

using ::fedlora::testing::ChildProcess;
using ::fedlora::testing::StartFedlora;

inline std::string Model() {
  return std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama/base";
}

class CoordinatorProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(Model())) GTEST_SKIP() << "no ../shared fixtures";
    dir_ = ::testing::TempDir() + "/coord_proc_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }

  testing::CliResult Run(const std::string& args) { return testing::RunFedlora(args, dir_); }

  // `coordinator init` with a small, fast recipe (Poisson sampling at rate 1: every device
  // that checks in is selected).
  void Init(int rounds, const std::string& extra = "", int train_deadline = 60,
            int selection_window = 3, int phase_deadline = 20) {
    auto r = Run("coordinator init --state " + dir_ + "/coord --model " + Model() +
                 " --goal 2 --population 2 --rounds " + std::to_string(rounds) +
                 " --steps 2 --batch 2 --seq 32 --noise-multiplier 1.0 --tokens 4"
                 " --selection-window " +
                 std::to_string(selection_window) + " --phase-deadline " +
                 std::to_string(phase_deadline) + " --train-deadline " +
                 std::to_string(train_deadline) + " " + extra);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    std::ifstream in(dir_ + "/coord/enroll-tokens.txt");
    for (std::string t; std::getline(in, t);) tokens_.push_back(t);
    ASSERT_EQ(tokens_.size(), 4u);
  }

  ChildProcess StartCoordinator(int port, const std::string& name,
                                std::map<std::string, std::string> env = {},
                                bool insecure = false) {
    std::vector<std::string> args = {
        "coordinator",   "run",         "--state",
        dir_ + "/coord", "--listen",    "127.0.0.1:" + std::to_string(port),
        "--metrics",     "127.0.0.1:0", "--exit-when-done"};
    if (insecure) args.push_back("--insecure");
    return StartFedlora(args, dir_ + "/" + name, env);
  }

  std::vector<std::string> Conn(int port, bool insecure) {
    std::vector<std::string> a = {"--coordinator", "127.0.0.1:" + std::to_string(port)};
    if (insecure) {
      a.push_back("--insecure");
    } else {
      a.insert(a.end(), {"--ca", ca_.empty() ? dir_ + "/coord/tls/ca.pem" : ca_, "--server-name",
                         "localhost"});
    }
    return a;
  }

  void Enroll(int i, int port, bool insecure) {
    std::vector<std::string> args = {"device", "enroll",  "--state",
                                     Phone(i), "--token", tokens_[i]};
    auto c = Conn(port, insecure);
    args.insert(args.end(), c.begin(), c.end());
    auto p = StartFedlora(args, dir_ + "/enroll" + std::to_string(i));
    ASSERT_EQ(p.Wait(60), 0) << p.Out() << p.Err();
  }

  std::string Phone(int i) { return dir_ + "/phone" + std::to_string(i); }

  // A user's text; the distinctive words must never appear in what the device sends. Each has
  // letters outside [0-9a-f] so that a hex digest or nonce on the wire cannot spell it by
  // chance ("cafe" once did, at byte 6007 of a CI recording).
  std::string WriteUserText(int i) {
    const std::string path = dir_ + "/user" + std::to_string(i) + ".txt";
    std::ofstream out(path);
    for (int k = 0; k < 30; ++k) {
      out << "secretword" << i << " meet me at the blue harbour teashop at seven " << k << "\n";
    }
    return path;
  }

  // Devices keep retrying while a coordinator restarts under a loaded CI machine (the default
  // of 8 transient errors in a row gives up after about a minute); --max-seconds bounds them.
  // from_store: the user's text goes through `device observe` into the encrypted local
  // store first, and the device trains from there (--from-store).
  // extra: more `device run` flags; env: the process's additions to the environment.
  // phone_retries: the retry policy a phone runs (no --max-failures, --max-seconds 400).
  ChildProcess StartDevice(int i, int port, bool insecure, int rounds, bool from_store = false,
                           const std::vector<std::string>& extra = {},
                           const std::map<std::string, std::string>& env = {},
                           bool phone_retries = false) {
    std::vector<std::string> args = {"device",    "run",   "--state",  Phone(i),
                                     "--model",   Model(), "--rounds", std::to_string(rounds),
                                     "--charging"};
    if (phone_retries) {
      args.insert(args.end(), {"--max-seconds", "400"});
    } else {
      args.insert(args.end(), {"--max-seconds", "240", "--max-failures", "20"});
    }
    args.insert(args.end(), extra.begin(), extra.end());
    if (from_store) {
      auto r = testing::RunFedlora(
          "device observe --state " + Phone(i) + " --file " + WriteUserText(i) + " --json", dir_);
      EXPECT_EQ(r.exit_code, 0) << r.err;
      EXPECT_THAT(r.out, ::testing::HasSubstr("\"entries\":30"));
      args.push_back("--from-store");
    } else {
      args.push_back("--data");
      args.push_back(WriteUserText(i));
    }
    auto c = Conn(port, insecure);
    args.insert(args.end(), c.begin(), c.end());
    return StartFedlora(
        args, dir_ + "/device" + std::to_string(i) + "_" + std::to_string(device_starts_++), env);
  }

  // `fedlora device status --json` of phone i.
  nlohmann::json DeviceStatus(int i, const std::string& extra = "") {
    auto r = Run("device status --json --state " + Phone(i) + " " + extra);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out, nullptr, false);
  }

  nlohmann::json Status() {
    auto r = Run("coordinator status --json --state " + dir_ + "/coord");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out, nullptr, false);
  }
  // The status once `ready` holds on it, or the last one after `seconds`: release reports
  // (devices_running) reach the store up to a second after GetRelease (docs/coordinator.md).
  template <typename Pred>
  nlohmann::json StatusWhen(Pred ready, double seconds = 10) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    nlohmann::json s = Status();
    while (!ready(s) && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      s = Status();
    }
    return s;
  }

  // Selection is a fixed window: two device processes whose first check-ins fall on either side
  // of a window boundary are each sampled alone, below the minimum cohort of 2, and those rounds
  // are aborted and charged. Returns the aborted rounds whose reason is not that one, and checks
  // what holds for every round: charged, and no private count in the status.
  std::vector<nlohmann::json> OtherAborts(const nlohmann::json& s) {
    std::vector<nlohmann::json> other;
    for (const auto& r : s["rounds"]) {
      EXPECT_TRUE(r["charged"].get<bool>()) << r.dump();
      EXPECT_FALSE(r.contains("selected") || r.contains("summed")) << r.dump();
      if (r["state"] != "aborted") continue;
      const std::string why = r["abort_reason"];
      if (why.find("fewer than the minimum cohort") == std::string::npos) other.push_back(r);
    }
    EXPECT_EQ(s["rounds_charged"].get<int>(),
              s["rounds_committed"].get<int>() + s["rounds_aborted"].get<int>());
    return other;
  }

  std::string dir_;
  std::string ca_;  // the coordinator's CA for devices; "" = dir_/coord/tls/ca.pem (Init's)
  std::vector<std::string> tokens_;
  int device_starts_ = 0;
};

}  // namespace fedlora

#endif  // FEDLORA_TESTS_COORDINATOR_PROCESS_TESTUTIL_H_
