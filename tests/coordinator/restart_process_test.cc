// Process-level tests of issue 31 (hardening): real `fedlora coordinator run` and `fedlora
// device run` processes on loopback over TLS, with bounded time. The same device processes
// come back after the coordinator was SIGKILLed and restarted tens of seconds later, and a
// second coordinator on a state folder that one already serves is refused.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "fedlora/coordinator/fault_injection.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testutil/cli_runner.h"
#include "testutil/process.h"

namespace fedlora {
namespace {

using ::fedlora::testing::ChildProcess;
using ::fedlora::testing::StartFedlora;
using ::testing::HasSubstr;

std::string Model() { return std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama/base"; }

class RestartProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(Model())) GTEST_SKIP() << "no ../shared fixtures";
    dir_ = ::testing::TempDir() + "/restart_proc_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto r = testing::RunFedlora(
        "coordinator init --state " + dir_ + "/coord --model " + Model() +
            " --goal 2 --population 2 --rounds 2 --steps 2 --batch 2 --seq 32"
            " --noise-multiplier 1.0 --tokens 2 --selection-window 1 --phase-deadline 60"
            " --train-deadline 120",
        dir_);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    std::ifstream in(dir_ + "/coord/enroll-tokens.txt");
    for (std::string t; std::getline(in, t);) tokens_.push_back(t);
    ASSERT_EQ(tokens_.size(), 2u);
  }

  ChildProcess StartCoordinator(int port, const std::string& name,
                                const std::map<std::string, std::string>& env = {}) {
    return StartFedlora({"coordinator", "run", "--state", dir_ + "/coord", "--listen",
                         "127.0.0.1:" + std::to_string(port), "--metrics", "", "--exit-when-done"},
                        dir_ + "/" + name, env);
  }

  std::vector<std::string> Tls(int port) {
    return {"--coordinator", "127.0.0.1:" + std::to_string(port),
            "--ca",          dir_ + "/coord/tls/ca.pem",
            "--server-name", "localhost"};
  }

  std::string Phone(int i) { return dir_ + "/phone" + std::to_string(i); }

  void Enroll(int i, int port) {
    std::vector<std::string> args = {"device", "enroll",  "--state",
                                     Phone(i), "--token", tokens_[i]};
    for (const auto& a : Tls(port)) args.push_back(a);
    auto p = StartFedlora(args, dir_ + "/enroll" + std::to_string(i));
    ASSERT_EQ(p.Wait(60), 0) << p.Out() << p.Err();
  }

  // A device with the default retry policy (no --max-failures): what a phone runs.
  ChildProcess StartDevice(int i, int port) {
    const std::string text = dir_ + "/user" + std::to_string(i) + ".txt";
    {
      std::ofstream out(text);
      for (int k = 0; k < 30; ++k) out << "device " << i << " line " << k << " of its text\n";
    }
    std::vector<std::string> args = {
        "device", "run",           "--state", Phone(i),     "--model", Model(), "--rounds",
        "2",      "--max-seconds", "400",     "--charging", "--data",  text,
        // The interrupted round stays charged on the device: three charges at z = 1 are past
        // the default budget of 8; this test is about reconnecting, not the budget.
        "--epsilon-budget", "1000"};
    for (const auto& a : Tls(port)) args.push_back(a);
    return StartFedlora(args, dir_ + "/device" + std::to_string(i));
  }

  std::string dir_;
  std::vector<std::string> tokens_;
};

// The coordinator dies by SIGKILL in the middle of round 1 (both devices wait in a secure-
// aggregation call) and comes back on the same port and state 30 s later. The devices that
// were running keep retrying through the outage, reconnect to the new process over TLS and
// complete both rounds.
TEST_F(RestartProcessTest, SameDevicesComeBackAfterCoordinatorRestart) {
  if (!coordinator::kFaultInjection) GTEST_SKIP() << "needs -DFEDLORA_FAULT_INJECTION=ON";
  const int port = testing::FreeLoopbackPort();
  auto first = StartCoordinator(port, "first", {{"FEDLORA_COORDINATOR_CRASH_AT", "masked_input"}});
  ASSERT_THAT(first.WaitForLine("listening on", 30), HasSubstr("(TLS)")) << first.Err();
  Enroll(0, port);
  Enroll(1, port);
  auto d0 = StartDevice(0, port);
  auto d1 = StartDevice(1, port);
  ASSERT_EQ(first.Wait(200), 128 + SIGKILL) << first.Out() << first.Err() << d0.Out();
  // An outage of tens of seconds: longer than eight retries with unlucky jitter take.
  std::this_thread::sleep_for(std::chrono::seconds(30));
  ASSERT_TRUE(d0.Running()) << "gave up during the outage:\n" << d0.Out() << d0.Err();
  ASSERT_TRUE(d1.Running()) << "gave up during the outage:\n" << d1.Out() << d1.Err();
  auto second = StartCoordinator(port, "second");
  ASSERT_THAT(second.WaitForLine("listening on", 30), HasSubstr("(TLS)")) << second.Err();
  for (ChildProcess* d : {&d0, &d1}) {
    ASSERT_EQ(d->Wait(300), 0) << d->Out() << d->Err() << "\nsecond coordinator:\n"
                               << second.Out() << second.Err();
    EXPECT_THAT(d->Out(), HasSubstr("2 rounds completed"));
  }
  ASSERT_EQ(second.Wait(60), 0) << second.Out() << second.Err();
  EXPECT_THAT(second.Out(), HasSubstr("round 3 committed"));  // round 1 aborted by the crash
}

// Two `coordinator run` on one state folder: the second exits non-zero at once, naming the
// first one's pid, and the first keeps serving (a device enrols with it afterwards).
TEST_F(RestartProcessTest, SecondCoordinatorOnTheSameStateFolderIsRefused) {
  const int port = testing::FreeLoopbackPort();
  auto first = StartCoordinator(port, "first");
  ASSERT_THAT(first.WaitForLine("listening on", 30), HasSubstr("(TLS)")) << first.Err();
  const int other_port = testing::FreeLoopbackPort();
  auto second = StartCoordinator(other_port, "second");
  const int rc = second.Wait(30);
  EXPECT_NE(rc, 0) << second.Out();
  EXPECT_NE(rc, -1) << "the second coordinator is still running:\n" << second.Out();
  EXPECT_THAT(second.Err(), HasSubstr("in use by another coordinator"));
  EXPECT_THAT(second.Err(), HasSubstr("pid " + std::to_string(first.pid())));
  EXPECT_THAT(second.Out(), ::testing::Not(HasSubstr("listening on")));
  ASSERT_TRUE(first.Running()) << first.Out() << first.Err();
  Enroll(0, port);
  first.Kill(SIGTERM);
  EXPECT_EQ(first.Wait(30), 0) << first.Err();
  // Once the first is gone, the folder can be served again.
  auto third = StartCoordinator(other_port, "third");
  EXPECT_THAT(third.WaitForLine("listening on", 30), HasSubstr("(TLS)")) << third.Err();
  third.Kill(SIGTERM);
  EXPECT_EQ(third.Wait(30), 0) << third.Err();
}

// The crash hook is compiled into the binary the tests run, and `fedlora --version` says so; a
// build without it ignores FEDLORA_COORDINATOR_CRASH_AT with a warning and keeps serving.
TEST_F(RestartProcessTest, VersionSaysWhetherFaultInjectionIsCompiledIn) {
  auto v = testing::RunFedlora("--version", dir_);
  ASSERT_EQ(v.exit_code, 0) << v.err;
  const int port = testing::FreeLoopbackPort();
  auto coord =
      StartCoordinator(port, "coordinator", {{"FEDLORA_COORDINATOR_CRASH_AT", "selecting"}});
  if (coordinator::kFaultInjection) {
    EXPECT_THAT(v.out, HasSubstr("fault injection: on"));
    // It crashes on entering the first round's selection.
    EXPECT_EQ(coord.Wait(60), 128 + SIGKILL) << coord.Out() << coord.Err();
  } else {
    EXPECT_THAT(v.out, HasSubstr("fault injection: off"));
    ASSERT_THAT(coord.WaitForLine("listening on", 30), HasSubstr("(TLS)")) << coord.Err();
    EXPECT_THAT(coord.Err(), HasSubstr("FEDLORA_COORDINATOR_CRASH_AT is ignored"));
    std::this_thread::sleep_for(std::chrono::seconds(2));
    EXPECT_TRUE(coord.Running());
    coord.Kill(SIGTERM);
    EXPECT_EQ(coord.Wait(30), 0) << coord.Err();
  }
}

}  // namespace
}  // namespace fedlora
