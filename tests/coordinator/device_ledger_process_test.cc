// Process-level tests of the device's own privacy ledger: a real `fedlora coordinator run` and
// real `fedlora device run` processes on loopback (process_testutil.h), the ledger read back
// through `fedlora device status` and device::DeviceLedger.
#include <signal.h>

#include <fstream>
#include <string>

#include "fedlora/device/device_ledger.h"
#include "fedlora/device/task_privacy.h"
#include "fedlora/coordinator/fault_injection.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "process_testutil.h"

namespace fedlora {
namespace {

using ::testing::HasSubstr;

// The device's own ledger survives a kill -9 of `fedlora device run`: the round charged before
// the kill (its masked input never left: the hook kills the process right after the charge is
// durable) is still there, a torn write on top of it is dropped, and the restarted device
// composes its next round onto it.
TEST_F(CoordinatorProcessTest, DeviceLedgerSurvivesSigkillOfTheDeviceProcess) {
  if (!coordinator::kFaultInjection) GTEST_SKIP() << "needs -DFEDLORA_FAULT_INJECTION=ON";
  Init(1, "", /*train_deadline=*/15);
  const int port = testing::FreeLoopbackPort();
  auto coord = StartCoordinator(port, "coordinator", {}, /*insecure=*/true);
  ASSERT_FALSE(coord.WaitForLine("listening on", 30).empty()) << coord.Err();
  Enroll(0, port, true);
  Enroll(1, port, true);
  auto killed =
      StartDevice(0, port, true, 1, false, {}, {{"FEDLORA_DEVICE_CRASH_AFTER_CHARGE", "1"}});
  auto d1 = StartDevice(1, port, true, 1);
  ASSERT_EQ(killed.Wait(120), 128 + SIGKILL) << killed.Out() << killed.Err();
  nlohmann::json st = DeviceStatus(0);
  ASSERT_EQ(st["rounds_charged"], 1) << st.dump();
  EXPECT_EQ(st["rounds"][0]["round"], 1);
  const double spent_before = st["epsilon_spent"].get<double>();
  EXPECT_GT(spent_before, 0.0);
  EXPECT_THAT(st["holds_against"].get<std::string>(), HasSubstr("without amplification"));
  // A crash in the middle of the next append leaves half a line.
  {
    std::ofstream torn(Phone(0) + "/privacy-ledger.jsonl", std::ios::app);
    torn << "{\"sha256\":\"00ff";
  }
  st = DeviceStatus(0);
  EXPECT_EQ(st["rounds_charged"], 1);
  EXPECT_EQ(st["recovered_bytes"], 15);
  EXPECT_DOUBLE_EQ(st["epsilon_spent"].get<double>(), spent_before);
  // Restarted: round 1 is aborted without it (nothing of it was sent), a later round commits.
  auto d0 = StartDevice(0, port, true, 1);
  ASSERT_EQ(d0.Wait(240), 0) << d0.Out() << d0.Err() << coord.Out();
  ASSERT_EQ(d1.Wait(240), 0) << d1.Out() << d1.Err();
  ASSERT_EQ(coord.Wait(60), 0) << coord.Out();
  st = DeviceStatus(0);
  ASSERT_EQ(st["rounds_charged"], 2) << st.dump();
  EXPECT_EQ(st["rounds"][0]["round"], 1);
  EXPECT_GT(st["rounds"][1]["round"].get<int>(), 1);
  EXPECT_EQ(st["recovered_bytes"], 0);
  EXPECT_GT(st["epsilon_spent"].get<double>(), spent_before);
  EXPECT_EQ(Status()["rounds_committed"], 1);
}

// A device with --epsilon-budget stops taking tasks at its budget, against a coordinator that
// keeps selecting it (Poisson rate 1, rounds left), and says why it stopped. The budget admits
// exactly one round of this recipe: the first round's charge is read from the device's ledger,
// and the budget set halfway between one and two such rounds.
TEST_F(CoordinatorProcessTest, DeviceStopsTakingTasksAtItsOwnBudget) {
  Init(3);
  const int port = testing::FreeLoopbackPort();
  auto coord = StartCoordinator(port, "coordinator", {}, /*insecure=*/true);
  ASSERT_FALSE(coord.WaitForLine("listening on", 30).empty()) << coord.Err();
  Enroll(0, port, true);
  Enroll(1, port, true);
  {
    auto d0 = StartDevice(0, port, true, 1);
    auto d1 = StartDevice(1, port, true, 1);
    ASSERT_EQ(d0.Wait(240), 0) << d0.Out() << d0.Err();
    ASSERT_EQ(d1.Wait(240), 0) << d1.Out() << d1.Err();
  }
  auto ledger = device::DeviceLedger::Open(Phone(0));
  ASSERT_TRUE(ledger.ok()) << ledger.status();
  ASSERT_EQ(ledger->rounds_charged(), 1);
  const double one = *ledger->Epsilon(1e-5);
  const double two = *ledger->Epsilon(1e-5, &ledger->entries()[0].rdp);
  // The default budget admits a round at the coordinator's default noise (z = 1).
  EXPECT_LT(one, device::kDefaultDeviceEpsilonBudget);
  const std::string budget = std::to_string((one + two) / 2);
  auto d0 = StartDevice(0, port, true, /*rounds=*/0, false, {"--epsilon-budget", budget});
  auto d1 = StartDevice(1, port, true, /*rounds=*/0, false, {"--epsilon-budget", "1000"});
  ASSERT_EQ(d0.Wait(200), 0) << d0.Out() << d0.Err() << coord.Out();
  EXPECT_THAT(d0.Out(), HasSubstr("declined before training: this device's privacy budget"));
  EXPECT_THAT(d0.Out(), HasSubstr("done: 0 rounds completed (this device's privacy budget"));
  EXPECT_THAT(d0.Out(), HasSubstr("> budget " + budget.substr(0, 4)));
  nlohmann::json st = DeviceStatus(0, "--epsilon-budget " + budget);
  EXPECT_EQ(st["rounds_charged"], 1);  // nothing charged, trained or sent for the refused round
  EXPECT_NEAR(st["epsilon_spent"].get<double>(), one, 1e-9);
  EXPECT_NEAR(st["epsilon_budget"].get<double>(), (one + two) / 2, 1e-5);
  d1.Kill(SIGTERM);
  coord.Kill(SIGTERM);
  d1.Wait(30);
  coord.Wait(30);
}

}  // namespace
}  // namespace fedlora
