// Process-level tests: a real `fedlora coordinator run` and real `fedlora device run`
// processes on loopback, with bounded time. What leaves a device is recorded by a TCP proxy.
#include <httplib.h>
#include <signal.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fedlora/coordinator/fault_injection.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "process_testutil.h"
#include "testutil/cli_runner.h"
#include "testutil/process.h"

namespace fedlora {
namespace {

using ::testing::HasSubstr;

// The README's scenario: init, a TLS coordinator, two devices enrolled and training two rounds.
TEST_F(CoordinatorProcessTest, TwoDevicesTwoRoundsOverTls) {
  Init(2);
  const int port = testing::FreeLoopbackPort();
  auto coord = StartCoordinator(port, "coordinator");
  ASSERT_THAT(coord.WaitForLine("listening on", 30), HasSubstr("(TLS)")) << coord.Err();
  const std::string metrics_line = coord.WaitForLine("metrics on", 10);
  ASSERT_FALSE(metrics_line.empty());
  const int metrics_port = std::stoi(metrics_line.substr(metrics_line.rfind(':') + 1));
  Enroll(0, port, false);
  Enroll(1, port, false);
  auto d0 = StartDevice(0, port, false, 2);
  auto d1 = StartDevice(1, port, false, 2, /*from_store=*/true);
  ASSERT_EQ(d0.Wait(240), 0) << d0.Out() << d0.Err() << coord.Out();
  ASSERT_EQ(d1.Wait(240), 0) << d1.Out() << d1.Err();
  EXPECT_THAT(d0.Out(), HasSubstr("2 rounds completed"));
  EXPECT_THAT(d1.Out(), HasSubstr("2 rounds completed"));
  EXPECT_THAT(d1.Out(), HasSubstr("30 lines of local text"));
  // Scrape /metrics before the coordinator exits.
  httplib::Client http("127.0.0.1", metrics_port);
  auto res = http.Get("/metrics");
  if (coord.Running() && res) {
    EXPECT_THAT(res->body, HasSubstr("fedlora_rounds_total{outcome=\"committed\"} 2"));
    EXPECT_THAT(res->body, HasSubstr("fedlora_checkins_total"));
    EXPECT_THAT(res->body, HasSubstr("fedlora_role{role=\"leader\"} 1"));  // single-host: leads
  }
  ASSERT_EQ(coord.Wait(60), 0) << coord.Out() << coord.Err();
  EXPECT_THAT(coord.Out(), HasSubstr("committed: adapter version 3"));

  nlohmann::json s = Status();
  ASSERT_FALSE(s.is_discarded());
  // A single-host folder's status has no lease and no process registry (multi-host only).
  EXPECT_EQ(s["store"], "sqlite");
  EXPECT_FALSE(s.contains("processes"));
  EXPECT_FALSE(s.contains("lease"));
  EXPECT_EQ(s["rounds_committed"], 2);
  EXPECT_TRUE(OtherAborts(s).empty()) << s["rounds"].dump();
  EXPECT_EQ(s["devices"], 2);
  EXPECT_EQ(s["unused_tokens"], 2);
  ASSERT_EQ(s["adapter_versions"].size(), 3u);
  EXPECT_NE(s["adapter_versions"][0]["sha256"], s["adapter_versions"][2]["sha256"]);
  // Every round charged; epsilon grows with each charge.
  const auto& rounds = s["rounds"];
  ASSERT_GE(rounds.size(), 2u);
  for (size_t i = 1; i < rounds.size(); ++i) {
    EXPECT_GT(rounds[i]["epsilon_after"].get<double>(),
              rounds[i - 1]["epsilon_after"].get<double>());
  }
  const auto& p = s["privacy"];
  EXPECT_DOUBLE_EQ(p["epsilon_observers"]["epsilon"].get<double>(),
                   rounds.back()["epsilon_after"].get<double>());
  // Both devices took part in both committed rounds (and in any aborted at a window boundary):
  // against the coordinator they pay for each in full, never less than the observers' figure.
  EXPECT_GE(p["epsilon_coordinator"]["max_rounds_per_device"], 2);
  EXPECT_GE(p["epsilon_coordinator"]["epsilon"].get<double>(),
            p["epsilon_observers"]["epsilon"].get<double>());
  EXPECT_THAT(p["epsilon_coordinator"]["holds_against"].get<std::string>(),
              HasSubstr("coordinator"));
  EXPECT_GE(s["participation_max"], 2);
}

// The operator's release workflow through the CLI, against a running coordinator: publish at
// 0%, promote to 100%, a device updates over TLS and reports it; `coordinator status` shows it;
// a rollback takes the device back to the earlier release.
TEST_F(CoordinatorProcessTest, ReleasePublishPromoteUpdateAndRollbackOverTls) {
  Init(1);
  const std::string adapter = std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama/adapter";
  ASSERT_EQ(Run("keys new --out " + dir_ + "/op.key").exit_code, 0);
  for (int v : {1, 2}) {
    auto c = Run("release create --adapter " + adapter + " --base " + Model() + " --version " +
                 std::to_string(v) + " --key " + dir_ + "/op.key --out " + dir_ + "/rel-" +
                 std::to_string(v));
    ASSERT_EQ(c.exit_code, 0) << c.err;
  }
  const std::string state = " --state " + dir_ + "/coord";
  const std::string trusted = " --trusted " + dir_ + "/op.key.pub";
  // An untrusted key is refused at publish time already.
  ASSERT_EQ(Run("keys new --out " + dir_ + "/other.key").exit_code, 0);
  auto refused = Run("release publish " + dir_ + "/rel-1" + state + " --trusted " + dir_ +
                     "/other.key.pub");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.err, HasSubstr("key"));
  auto p1 = Run("release publish " + dir_ + "/rel-1" + state + trusted + " --percent 100");
  ASSERT_EQ(p1.exit_code, 0) << p1.err;
  auto p2 = Run("release publish " + dir_ + "/rel-2" + state + trusted);
  ASSERT_EQ(p2.exit_code, 0) << p2.err;
  EXPECT_THAT(p2.out, HasSubstr("rolling at 0%"));

  const int port = testing::FreeLoopbackPort();
  auto coord = StartCoordinator(port, "coordinator");
  ASSERT_THAT(coord.WaitForLine("listening on", 30), HasSubstr("(TLS)")) << coord.Err();
  Enroll(0, port, false);
  auto update = [&] {
    auto c = Conn(port, false);
    std::string args = "device update --state " + Phone(0) + " --model " + Model() + trusted +
                       " --json";
    for (const auto& a : c) args += " " + a;
    auto r = Run(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out, nullptr, false);
  };
  nlohmann::json u = update();
  EXPECT_EQ(u["action"], "installed");
  EXPECT_EQ(u["running"], 1);
  auto promote = Run("release promote" + state + " --percent 100");
  ASSERT_EQ(promote.exit_code, 0) << promote.err;
  EXPECT_THAT(promote.out, HasSubstr("complete at 100%"));
  u = update();
  EXPECT_EQ(u["action"], "installed");
  EXPECT_EQ(u["running"], 2);
  nlohmann::json s = StatusWhen([](const nlohmann::json& j) {
    return j["releases"].size() == 2 && j["releases"][1]["devices_running"] == 1;
  });
  ASSERT_EQ(s["releases"].size(), 2u);
  EXPECT_EQ(s["releases"][1]["state"], "complete");
  EXPECT_EQ(s["releases"][1]["devices_running"], 1);
  ASSERT_EQ(s["releases"][1]["events"].size(), 2u);
  EXPECT_EQ(s["releases"][1]["events"][1]["action"], "promote");

  auto rb = Run("release rollback" + state + " --key " + dir_ + "/op.key");
  ASSERT_EQ(rb.exit_code, 0) << rb.err;
  EXPECT_THAT(rb.out, HasSubstr("rollback 2 -> 1"));
  u = update();
  EXPECT_EQ(u["action"], "rolled back");
  EXPECT_EQ(u["running"], 1);
  s = StatusWhen([](const nlohmann::json& j) { return j["releases"][0]["devices_running"] == 1; });
  EXPECT_EQ(s["releases"][1]["state"], "rolled_back");
  EXPECT_EQ(s["releases"][0]["devices_running"], 1);
  coord.Kill(SIGTERM);
  EXPECT_EQ(coord.Wait(30), 0) << coord.Err();
}

// Nothing a device sends contains its text, and no per-device training value: every byte
// from the device processes passes a recording proxy (plaintext, loopback). Each device logs
// its own loss, steps, seconds and training windows (`--json`); none of them, nor its count of
// text lines, is in any request it sent (a double's 8 bytes anywhere; a count as a top-level
// integer field of a request).
TEST_F(CoordinatorProcessTest, DeviceBytesCarryNoTextAndNoTrainingValues) {
  Init(1);
  const int port = testing::FreeLoopbackPort();
  auto coord = StartCoordinator(port, "coordinator", {}, /*insecure=*/true);
  ASSERT_THAT(coord.WaitForLine("listening on", 30), HasSubstr("plaintext"));
  EXPECT_THAT(coord.Err(), HasSubstr("--insecure"));
  testing::RecordingProxy proxy(port);
  Enroll(0, proxy.port(), true);
  Enroll(1, proxy.port(), true);
  auto d0 = StartDevice(0, proxy.port(), true, 1, false, {"--json"});
  auto d1 = StartDevice(1, proxy.port(), true, 1, false, {"--json"});
  ASSERT_EQ(d0.Wait(240), 0) << d0.Out() << d0.Err();
  ASSERT_EQ(d1.Wait(240), 0) << d1.Out() << d1.Err();
  ASSERT_EQ(coord.Wait(60), 0) << coord.Out();
  const std::string sent = proxy.ClientBytes();
  // The recording is real: it holds the protocol's method names and a masked input.
  EXPECT_THAT(sent, HasSubstr("/fedlora.v1.Coordinator/MaskedInput"));
  EXPECT_GT(sent.size(), 4000u);
  for (const char* word : {"secretword", "harbour", "teashop", "meet me"}) {
    EXPECT_EQ(sent.find(word), std::string::npos) << word;
  }
  // What each device logged about its round (its own log: it must not have been sent).
  std::vector<double> doubles;
  std::vector<uint64_t> counts = {30};  // the lines of text each device holds
  for (ChildProcess* d : {&d0, &d1}) {
    nlohmann::json j = nlohmann::json::parse(d->Out(), nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << d->Out();
    ASSERT_EQ(j["rounds"].size(), 1u) << d->Out();
    const nlohmann::json& r = j["rounds"][0];
    ASSERT_TRUE(r["completed"].get<bool>()) << d->Out();
    doubles.push_back(r["loss"].get<double>());
    doubles.push_back(r["seconds"].get<double>());
    counts.push_back(r["windows"].get<uint64_t>());
    counts.push_back(r["steps"].get<uint64_t>());
    EXPECT_GT(r["windows"].get<uint64_t>(), 1u);
    EXPECT_GT(r["loss"].get<double>(), 0.0);
  }
  for (double v : doubles) {
    std::string bytes(8, '\0');
    std::memcpy(bytes.data(), &v, 8);  // little-endian, as protobuf writes a double
    EXPECT_EQ(sent.find(bytes), std::string::npos) << "a device's double " << v << " was sent";
  }
  // Every request, parsed: no top-level integer field carries a device's count. The protocol's
  // own integers in a one-round run are versions, the round number, offsets and the bit.
  size_t messages = 0;
  for (const std::string& connection : proxy.ClientConnections()) {
    for (const std::string& m : testing::GrpcRequestMessages(connection)) {
      ++messages;
      testing::WireScalars scalars;
      testing::TopLevelScalars(m, &scalars);
      for (uint64_t v : scalars.varints) {
        for (uint64_t c : counts) EXPECT_NE(v, c) << "a device's count was sent";
      }
    }
  }
  EXPECT_GE(messages, 2u * 6u);  // each device: check-in, download, four secure-aggregation phases
}

// kill -9 at each phase, then restart on the same state: committed versions and charges are
// kept, the interrupted round is aborted with its reason (its charge stays), and training
// finishes its rounds.
TEST_F(CoordinatorProcessTest, SigkillAtEachPhaseThenResume) {
  if (!coordinator::kFaultInjection) GTEST_SKIP() << "needs -DFEDLORA_FAULT_INJECTION=ON";
  const std::string root = dir_;
  for (const std::string phase : {"configuring", "advertise_keys", "share_keys", "masked_input",
                                  "unmasking", "committing", "committed"}) {
    SCOPED_TRACE(phase);
    dir_ = root + "/" + phase;
    std::filesystem::create_directories(dir_);
    tokens_.clear();
    Init(2);
    const int port = testing::FreeLoopbackPort();
    auto first = StartCoordinator(port, "first", {{"FEDLORA_COORDINATOR_CRASH_AT", phase}}, true);
    ASSERT_FALSE(first.WaitForLine("listening on", 30).empty()) << first.Err();
    Enroll(0, port, true);
    Enroll(1, port, true);
    // Each device may be charged for an interrupted round too: a budget that never binds here.
    const std::vector<std::string> budget = {"--epsilon-budget", "1000"};
    auto d0 = StartDevice(0, port, true, 2, false, budget);
    auto d1 = StartDevice(1, port, true, 2, false, budget);
    ASSERT_EQ(first.Wait(120), 128 + SIGKILL) << first.Out() << first.Err();
    nlohmann::json before = Status();
    auto second = StartCoordinator(port, "second", {}, true);
    ASSERT_EQ(second.Wait(200), 0) << second.Out() << second.Err() << d0.Out();
    // Killed after the commit, the first coordinator may die before a device's unmasking
    // call reaches it (the other device's shares were enough): that device saw round 1 fail,
    // still wants a second completed round, and the finished run offers none. It retries
    // until stopped; every other device ends on its own.
    for (ChildProcess* d : {&d0, &d1}) {
      const int rc = d->Wait(60);
      if (rc != 0 && phase == "committed" &&
          d->Out().find("round 1: not completed: unmasking") != std::string::npos &&
          d->Out().find("round 2: completed") != std::string::npos) {
        d->Kill(SIGTERM);
        d->Wait(30);
        continue;
      }
      ASSERT_EQ(rc, 0) << d->Out() << d->Err() << "\nsecond coordinator:\n" << second.Out()
                       << second.Err();
    }
    nlohmann::json s = Status();
    ASSERT_FALSE(s.is_discarded());
    EXPECT_EQ(s["rounds_committed"], 2);
    EXPECT_EQ(s["adapter_versions"].size(), 3u);
    // Besides rounds aborted at a window boundary (OtherAborts), only the killed round may be
    // aborted: killed on entering configuring, nothing was charged or recorded for it yet.
    const std::vector<nlohmann::json> other = OtherAborts(s);
    if (phase == "configuring") {
      EXPECT_TRUE(other.empty()) << s["rounds"].dump();
    } else if (phase == "committed") {
      // The commit reached the disk before the kill: nothing is lost or redone.
      EXPECT_EQ(before["rounds_committed"], 1);
      EXPECT_TRUE(other.empty()) << s["rounds"].dump();
    } else {
      EXPECT_GE(before["rounds_charged"], 1);  // the charge was durable before the kill
      ASSERT_EQ(other.size(), 1u) << s["rounds"].dump();
      EXPECT_EQ(other[0]["abort_reason"], "coordinator restarted during " + phase);
      EXPECT_TRUE(other[0]["charged"].get<bool>());
    }
    EXPECT_THAT(second.Out(), HasSubstr("resumed at adapter version"));
  }
}

}  // namespace
}  // namespace fedlora
