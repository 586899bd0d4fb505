// Process-level tests of issue 31 (hardening): real `fedlora coordinator run` and `fedlora
// device run` processes on loopback over TLS, with bounded time. The same device processes
// come back after the coordinator was SIGKILLed and restarted tens of seconds later, and a
// second coordinator on a state folder that one already serves is refused.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "fedlora/coordinator/fault_injection.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "process_testutil.h"
#include "testutil/cli_runner.h"
#include "testutil/process.h"

namespace fedlora {
namespace {

using ::fedlora::testing::ChildProcess;
using ::fedlora::testing::StartFedlora;
using ::testing::HasSubstr;

class RestartProcessTest : public CoordinatorProcessTest {
 protected:
  void SetUp() override {
    CoordinatorProcessTest::SetUp();
    if (IsSkipped()) return;
    // Two rounds; a 10 s window, long enough for devices reconnecting after the restart.
    Init(2, "", /*train_deadline=*/120, /*selection_window=*/10, /*phase_deadline=*/60);
  }

  ChildProcess StartCoordinator(int port, const std::string& name,
                                const std::map<std::string, std::string>& env = {}) {
    return CoordinatorProcessTest::StartCoordinator(port, name, env, /*insecure=*/false);
  }
  void Enroll(int i, int port) { CoordinatorProcessTest::Enroll(i, port, /*insecure=*/false); }

  // What a phone runs (the default retry policy), over TLS. The interrupted round stays
  // charged on the device: three charges at z = 1 are past the default budget of 8; this test
  // is about reconnecting, not the budget.
  ChildProcess StartDevice(int i, int port) {
    return CoordinatorProcessTest::StartDevice(i, port, /*insecure=*/false, /*rounds=*/2,
                                               /*from_store=*/false, {"--epsilon-budget", "1000"},
                                               {}, /*phone_retries=*/true);
  }
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
  // The round killed in masked_input is aborted at the restart (its charge stays); two rounds
  // commit after it. (Selection is a fixed window, at least retry_max_s long: devices that
  // reconnect on either side of a window's end make an undersized round, aborted and charged,
  // and meet in the next one; the round numbers are therefore not fixed.)
  EXPECT_THAT(second.Out(), HasSubstr("aborted: coordinator restarted during masked_input"));
  EXPECT_THAT(second.Out(), HasSubstr("committed: adapter version 3"));
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
