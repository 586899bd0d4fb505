// `coordinator status` on a multi-host folder lists every process with its role and health
// (issue 30; docs/coordinator.md "Status and health"): a leader, a standby, an edge and an
// aggregator, each a real process on one PostgreSQL database; then an aggregator paused, an
// edge killed, an aggregator stopped cleanly and the leader killed, each seen in the status.
#if FEDLORA_HAVE_POSTGRESQL

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "fedlora/coordinator/process_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "multihost_testutil.h"

namespace fedlora {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

class ProcessStatusProcessTest : public MultiHostProcessTest {
 protected:
  // The process whose id is `id` in `coordinator status --json` (null when not listed).
  static nlohmann::json Row(const nlohmann::json& status, const std::string& id) {
    for (const auto& p : status["processes"]) {
      if (p["id"] == id) return p;
    }
    return nullptr;
  }
  // The one row of role `role` (null when none or several).
  static nlohmann::json OnlyRole(const nlohmann::json& status, const std::string& role) {
    nlohmann::json found = nullptr;
    int n = 0;
    for (const auto& p : status["processes"]) {
      if (p["role"] == role) found = p, ++n;
    }
    return n == 1 ? found : nlohmann::json(nullptr);
  }
  // GET /metrics of 127.0.0.1:port ("" when it does not answer).
  static std::string MetricsText(int port) {
    httplib::Client http("127.0.0.1", port);
    http.set_connection_timeout(2);
    auto res = http.Get("/metrics");
    return res ? res->body : "";
  }
  static std::string Health(const nlohmann::json& row) {
    return row.is_null() ? "(not listed)" : row["health"].get<std::string>();
  }
};

TEST_F(ProcessStatusProcessTest, StatusShowsEveryProcessRoleAndHealthThroughFaults) {
  SetUpCluster(/*rounds=*/1, /*n=*/2, /*edges=*/1);
  auto leader = StartSlot(0, "leader");
  ASSERT_THAT(leader.WaitForLine("listening on", 60), HasSubstr("(TLS)")) << leader.Err();
  auto standby = StartSlot(1, "standby");
  ASSERT_FALSE(standby.WaitForLine("standby: coord-0 leads (epoch 1)", 60).empty())
      << standby.Out() << standby.Err();
  auto edge = StartEdge(0);
  ASSERT_FALSE(edge.WaitForLine("listening on", 60).empty()) << edge.Err();
  const int agg_port = testing::FreeLoopbackPort(), agg_metrics = testing::FreeLoopbackPort();
  auto agg = StartFedlora({"coordinator", "aggregator", "--state", dir_ + "/coord", "--listen",
                           "127.0.0.1:" + std::to_string(agg_port), "--metrics",
                           "127.0.0.1:" + std::to_string(agg_metrics)},
                          dir_ + "/aggregator");
  ASSERT_FALSE(agg.WaitForLine("registered as", 60).empty()) << agg.Err();

  // A standby serves its metrics port while it waits: /healthz 503 "standby" (HAProxy keeps
  // it out), /metrics with its role.
  std::string body;
  EXPECT_EQ(coordinator::ProbeHealthz("127.0.0.1:" + std::to_string(slots_[1].metrics),
                                      std::chrono::milliseconds(2000), &body),
            503);
  EXPECT_EQ(body, "standby");
  EXPECT_THAT(MetricsText(slots_[1].metrics), HasSubstr("fedlora_role{role=\"standby\"} 1"));
  EXPECT_THAT(MetricsText(slots_[0].metrics), HasSubstr("fedlora_role{role=\"leader\"} 1"));
  EXPECT_THAT(MetricsText(agg_metrics), HasSubstr("fedlora_role{role=\"aggregator\"} 1"));
  EXPECT_THAT(MetricsText(edge_slots_[0].metrics), HasSubstr("fedlora_role{role=\"edge\"} 1"));

  // All four listed, with their roles, addresses and health.
  auto t0 = Clock::now();
  nlohmann::json s = Status();
  const double status_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  ASSERT_EQ(s["processes"].size(), 4u) << s.dump(1);
  const auto l = Row(s, "coord-0");
  ASSERT_FALSE(l.is_null()) << s.dump(1);
  EXPECT_EQ(l["role"], "leader");
  EXPECT_EQ(l["health"], "ok");
  EXPECT_EQ(l["holds_lease"], true);
  EXPECT_EQ(l["address"], "127.0.0.1:" + std::to_string(slots_[0].port));
  EXPECT_EQ(l["metrics_address"], "127.0.0.1:" + std::to_string(slots_[0].metrics));
  EXPECT_EQ(l["pid"], leader.pid());
  EXPECT_GT(l["uptime_s"].get<double>(), 0);
  EXPECT_LT(l["heartbeat_age_s"].get<double>(), 3);
  const auto sb = Row(s, "coord-1");
  ASSERT_FALSE(sb.is_null()) << s.dump(1);
  EXPECT_EQ(sb["role"], "standby");
  EXPECT_EQ(sb["health"], "standby");
  EXPECT_EQ(sb["address"], "");
  EXPECT_EQ(sb["holds_lease"], false);
  const auto e = OnlyRole(s, "edge");
  EXPECT_EQ(Health(e), "ok") << s.dump(1);
  EXPECT_EQ(e["address"], "127.0.0.1:" + std::to_string(edge_slots_[0].port));
  EXPECT_EQ(e["pid"], edge.pid());
  const auto a = OnlyRole(s, "aggregator");
  EXPECT_EQ(Health(a), "ok") << s.dump(1);
  EXPECT_EQ(a["address"], "127.0.0.1:" + std::to_string(agg_port));
  EXPECT_EQ(s["health_rules"]["stale_after_s"], 5);
  auto text = Run("coordinator status --state " + dir_ + "/coord");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("processes: 4 registered"));
  EXPECT_THAT(text.out, HasSubstr("(holds the lease)"));
  EXPECT_THAT(text.out, ::testing::ContainsRegex("standby +standby +coord-1"));

  // SIGSTOP of the aggregator: its /healthz stops answering at once, its heartbeat stops:
  // "unreachable", then "stale" once the heartbeat is older than the threshold; back to "ok"
  // after SIGCONT.
  agg.Kill(SIGSTOP);
  t0 = Clock::now();
  s = Status();
  const double paused_status_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const std::string paused = Health(OnlyRole(s, "aggregator"));
  EXPECT_TRUE(paused == "unreachable" || paused == "stale") << s.dump(1);
  std::printf(
      "coordinator status --json (CLI wall time), 4 processes: %.2f s; one of them "
      "SIGSTOPped (\"%s\", its probe timing out): %.2f s\n",
      status_seconds, paused.c_str(), paused_status_seconds);
  s = StatusWhen(
      [](const nlohmann::json& j) { return Health(OnlyRole(j, "aggregator")) == "stale"; }, 15);
  EXPECT_EQ(Health(OnlyRole(s, "aggregator")), "stale") << s.dump(1);
  agg.Kill(SIGCONT);
  s = StatusWhen([](const nlohmann::json& j) { return Health(OnlyRole(j, "aggregator")) == "ok"; },
                 10);
  EXPECT_EQ(Health(OnlyRole(s, "aggregator")), "ok") << s.dump(1);

  // kill -9 of the edge: its port closes at once ("unreachable" while the heartbeat is still
  // fresh), then "stale" after the threshold (5 s, less the part of a beat already gone).
  edge.Kill(SIGKILL);
  edge.Wait(10);
  const auto killed = Clock::now();
  EXPECT_EQ(Health(OnlyRole(Status(), "edge")), "unreachable");
  s = StatusWhen([](const nlohmann::json& j) { return Health(OnlyRole(j, "edge")) == "stale"; },
                 15);
  const double stale_after = std::chrono::duration<double>(Clock::now() - killed).count();
  EXPECT_EQ(Health(OnlyRole(s, "edge")), "stale") << s.dump(1);
  EXPECT_GT(stale_after, 3.5);

  // SIGTERM of the aggregator: a clean stop deletes its row.
  agg.Kill(SIGTERM);
  ASSERT_EQ(agg.Wait(30), 0) << agg.Err();
  s = Status();
  EXPECT_TRUE(OnlyRole(s, "aggregator").is_null()) << s.dump(1);
  EXPECT_EQ(s["processes"].size(), 3u) << s.dump(1);

  // kill -9 of the leader: the standby takes the lease and its row says leader; the killed
  // leader's row goes stale.
  leader.Kill(SIGKILL);
  leader.Wait(10);
  ASSERT_FALSE(standby.WaitForLine("listening on", LeaseTtl() * 1.25 + 30).empty())
      << standby.Out() << standby.Err();
  s = StatusWhen(
      [](const nlohmann::json& j) {
        return Row(j, "coord-1")["role"] == "leader" && Health(Row(j, "coord-0")) == "stale";
      },
      15);
  const auto new_leader = Row(s, "coord-1");
  EXPECT_EQ(new_leader["role"], "leader") << s.dump(1);
  EXPECT_EQ(new_leader["health"], "ok") << s.dump(1);
  EXPECT_EQ(new_leader["holds_lease"], true) << s.dump(1);
  EXPECT_EQ(new_leader["address"], "127.0.0.1:" + std::to_string(slots_[1].port));
  EXPECT_EQ(Health(Row(s, "coord-0")), "stale") << s.dump(1);
  EXPECT_EQ(Row(s, "coord-0")["holds_lease"], false);
  EXPECT_THAT(MetricsText(slots_[1].metrics), HasSubstr("fedlora_role{role=\"leader\"} 1"));
  standby.Kill(SIGTERM);
  EXPECT_EQ(standby.Wait(30), 0) << standby.Err();
  EXPECT_TRUE(Row(Status(), "coord-1").is_null());
}

}  // namespace
}  // namespace fedlora

#endif  // FEDLORA_HAVE_POSTGRESQL
