// The process registry (process_registry.h) against a real PostgreSQL server: heartbeats,
// role changes, removal, ages on the database clock, pruning, the aggregators' Live view; and
// the health rules of `coordinator status` (process_status.h) against real HTTP servers.
#if FEDLORA_HAVE_POSTGRESQL

#include "fedlora/coordinator/process_registry.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "coordinator/store_testutil.h"
#include "fedlora/coordinator/metrics.h"
#include "fedlora/coordinator/metrics_http.h"
#include "fedlora/coordinator/process_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testutil/postgres_server.h"

namespace fedlora::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ProcessRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.ok()) << server_.error();
    db_ = server_.CreateDatabase();
    ASSERT_FALSE(db_.empty()) << server_.error();
    auto r = OpenProcessRegistry(server_.ConnInfo(db_));
    ASSERT_TRUE(r.ok()) << r.status();
    registry_ = std::move(*r);
  }
  // Moves `id`'s heartbeat (and start) `seconds` into the past, on the database.
  void AgeRow(const std::string& id, int seconds) {
    ASSERT_EQ(server_.Exec(db_, "UPDATE processes SET heartbeat = heartbeat - interval '" +
                                    std::to_string(seconds) +
                                    " seconds', started = started - "
                                    "interval '" +
                                    std::to_string(seconds) + " seconds' WHERE id = '" + id + "'"),
              "");
  }
  std::vector<RegisteredProcess> List() {
    auto l = registry_->List();
    EXPECT_TRUE(l.ok()) << l.status();
    return l.ok() ? *l : std::vector<RegisteredProcess>{};
  }
  static ProcessRecord Record(const std::string& id, const std::string& role,
                              const std::string& address, int64_t pid = 100) {
    return ProcessRecord{id, role, address, "127.0.0.1:9", "host-a", pid, "0.9.0"};
  }

  fedlora::testing::PostgresServer& server_ = testing::SharedPostgres();
  std::string db_;
  std::shared_ptr<ProcessRegistry> registry_;
};

TEST_F(ProcessRegistryTest, HeartbeatRegistersRenewsChangesRoleAndRemoves) {
  ASSERT_TRUE(registry_->Heartbeat(Record("coord-0", kRoleStandby, "")).ok());
  ASSERT_TRUE(registry_->Heartbeat(Record("edge-x", kRoleEdge, "127.0.0.1:50061", 200)).ok());
  auto rows = List();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].record.id, "coord-0");
  EXPECT_EQ(rows[0].record.role, "standby");
  EXPECT_EQ(rows[0].record.host, "host-a");
  EXPECT_EQ(rows[0].record.pid, 100);
  EXPECT_EQ(rows[0].record.version, "0.9.0");
  EXPECT_EQ(rows[0].record.metrics_address, "127.0.0.1:9");
  EXPECT_LT(rows[0].heartbeat_age_seconds, 2);
  EXPECT_EQ(rows[1].record.role, "edge");

  // Ages are the database's: a beat 20 s ago reads as 20 s old, however this host's clock runs.
  AgeRow("coord-0", 20);
  rows = List();
  EXPECT_NEAR(rows[0].heartbeat_age_seconds, 20, 2);
  EXPECT_LT(rows[0].uptime_seconds, 2);  // it ran for no time before its last beat
  // The coordinator takes the lease: the same row says leader, with its address; the start is
  // kept (same host and pid), the heartbeat fresh again.
  ASSERT_TRUE(registry_->Heartbeat(Record("coord-0", kRoleLeader, "127.0.0.1:50051")).ok());
  rows = List();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].record.role, "leader");
  EXPECT_EQ(rows[0].record.address, "127.0.0.1:50051");
  EXPECT_LT(rows[0].heartbeat_age_seconds, 2);
  EXPECT_NEAR(rows[0].uptime_seconds, 20, 2);
  // Another process reusing the name (a new pid): a new start.
  ASSERT_TRUE(registry_->Heartbeat(Record("coord-0", kRoleStandby, "", 101)).ok());
  EXPECT_LT(List()[0].uptime_seconds, 2);

  ASSERT_TRUE(registry_->Remove("coord-0").ok());
  rows = List();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].record.id, "edge-x");
  EXPECT_TRUE(registry_->Remove("coord-0").ok());  // absent: fine
}

TEST_F(ProcessRegistryTest, RefusesAnEmptyIdAndAnUnknownRole) {
  EXPECT_EQ(registry_->Heartbeat(Record("", kRoleEdge, "a:1")).code(),
            absl::StatusCode::kInvalidArgument);
  auto bad = registry_->Heartbeat(Record("x", "janitor", "a:1"));
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), HasSubstr("leader, standby, edge, aggregator"));
  EXPECT_TRUE(List().empty());
}

// The leader's view of aggregators is the registry's rows of role aggregator with a fresh
// heartbeat; Prune deletes the rows gone long ago.
TEST_F(ProcessRegistryTest, LiveAggregatorsAndPrune) {
  ASSERT_TRUE(registry_->Heartbeat(Record("agg-b", kRoleAggregator, "127.0.0.1:7002")).ok());
  ASSERT_TRUE(registry_->Heartbeat(Record("agg-a", kRoleAggregator, "127.0.0.1:7001")).ok());
  ASSERT_TRUE(registry_->Heartbeat(Record("edge", kRoleEdge, "127.0.0.1:6001")).ok());
  auto live = registry_->Live(std::chrono::milliseconds(3000));
  ASSERT_TRUE(live.ok()) << live.status();
  EXPECT_THAT(*live, ElementsAre("127.0.0.1:7001", "127.0.0.1:7002"));
  AgeRow("agg-b", 700);
  live = registry_->Live(std::chrono::milliseconds(3000));
  ASSERT_TRUE(live.ok());
  EXPECT_THAT(*live, ElementsAre("127.0.0.1:7001"));
  auto pruned = registry_->Prune(std::chrono::minutes(10));
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(*pruned, 1);
  EXPECT_EQ(List().size(), 2u);
  auto epoch = registry_->LeaseEpoch("global");
  ASSERT_TRUE(epoch.ok());
  EXPECT_EQ(*epoch, 0u);
}

// A database made before the registry existed gains the table on the next open.
TEST_F(ProcessRegistryTest, AnOlderDatabaseGainsTheTable) {
  ASSERT_EQ(server_.Exec(db_, "DROP TABLE processes"), "");
  auto reopened = OpenProcessRegistry(server_.ConnInfo(db_));
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_TRUE((*reopened)->Heartbeat(Record("e", kRoleEdge, "a:1")).ok());
}

TEST_F(ProcessRegistryTest, HeartbeatKeepsTheRowFreshAndACleanStopRemovesIt) {
  ProcessHeartbeatOptions o;
  o.registry = registry_;
  o.every = std::chrono::milliseconds(200);
  ProcessRecord self = ThisProcess(kRoleStandby, "", "127.0.0.1:9464", "coord-7");
  EXPECT_EQ(self.pid, getpid());
  EXPECT_FALSE(self.host.empty());
  EXPECT_FALSE(self.version.empty());
  EXPECT_THAT(ThisProcess(kRoleEdge, "a:1", "").id, ::testing::StartsWith("edge:"));
  EXPECT_NE(ThisProcess(kRoleEdge, "a:1", "").id, ThisProcess(kRoleEdge, "a:1", "").id);
  auto beat = ProcessHeartbeat::Start(self, o);
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_TRUE((*beat)->last_status().ok());
  ASSERT_EQ(List().size(), 1u);
  AgeRow("coord-7", 30);
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  auto rows = List();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_LT(rows[0].heartbeat_age_seconds, 1);  // renewed on its own
  ASSERT_TRUE((*beat)->SetRole(kRoleLeader, "127.0.0.1:50051").ok());
  rows = List();
  EXPECT_EQ(rows[0].record.role, "leader");
  EXPECT_EQ(rows[0].record.address, "127.0.0.1:50051");
  beat->reset();
  EXPECT_TRUE(List().empty());
}

// The leader's heartbeat deletes rows gone for kProcessPruneAfter (its first beat does);
// other roles' beats never do.
TEST_F(ProcessRegistryTest, TheLeadersHeartbeatPrunesRowsGoneLongAgo) {
  ASSERT_TRUE(registry_->Heartbeat(Record("dead-edge", kRoleEdge, "a:1")).ok());
  ASSERT_TRUE(registry_->Heartbeat(Record("recent-edge", kRoleEdge, "a:2")).ok());
  AgeRow("dead-edge", 11 * 60);
  AgeRow("recent-edge", 9 * 60);
  ProcessHeartbeatOptions o;
  o.registry = registry_;
  {
    auto edge = ProcessHeartbeat::Start(ThisProcess(kRoleEdge, "a:3", ""), o);
    ASSERT_TRUE(edge.ok());
    EXPECT_EQ(List().size(), 3u);
  }
  auto leader = ProcessHeartbeat::Start(ThisProcess(kRoleLeader, "a:4", "", "coord-0"), o);
  ASSERT_TRUE(leader.ok());
  auto rows = List();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].record.id, "coord-0");
  EXPECT_EQ(rows[1].record.id, "recent-edge");
}

// ---- Health as `coordinator status` judges it.

TEST(ProcessHealthTest, ClassifyByHeartbeatAgeThenHealthz) {
  const ProcessHealthOptions o;  // stale after 5 s, gone after 60 s
  EXPECT_EQ(ClassifyHealth(kRoleEdge, 0.5, 200, "ok", o), "ok");
  EXPECT_EQ(ClassifyHealth(kRoleEdge, 0.5, -1, "", o), "ok");  // serves no metrics: heartbeat only
  EXPECT_EQ(ClassifyHealth(kRoleEdge, 0.5, 503, "standby", o), "standby");
  EXPECT_EQ(ClassifyHealth(kRoleEdge, 0.5, 503, "overloaded", o), "unhealthy");
  EXPECT_EQ(ClassifyHealth(kRoleEdge, 0.5, 0, "", o), "unreachable");
  EXPECT_EQ(ClassifyHealth(kRoleEdge, 5.5, 200, "ok", o), "stale");
  EXPECT_EQ(ClassifyHealth(kRoleEdge, 61, -1, "", o), "gone");
  // A standby without a metrics port: its role and heartbeat say it.
  EXPECT_EQ(ClassifyHealth(kRoleStandby, 0.5, -1, "", o), "standby");
  EXPECT_EQ(ClassifyHealth(kRoleStandby, 7, -1, "", o), "stale");
}

TEST(ProcessHealthTest, ProbesHealthzInParallelWithAShortTimeout) {
  MetricsRegistry metrics;
  SetRoleMetric(metrics, kRoleStandby);
  EXPECT_EQ(metrics.Value(kMetricRole, {"standby"}), 1);
  EXPECT_EQ(metrics.Value(kMetricRole, {"leader"}), 0);
  EXPECT_THAT(metrics.RenderPrometheus(), HasSubstr("fedlora_role{role=\"standby\"} 1"));
  auto serving = MetricsHttpServer::Start(&metrics, "127.0.0.1", 0);
  auto standby = MetricsHttpServer::Start(
      &metrics, "127.0.0.1", 0, [] { return std::pair<int, std::string>(503, "standby"); });
  ASSERT_TRUE(serving.ok() && standby.ok());
  // A listening socket that never answers (a SIGSTOPped process's kernel accepts for it).
  int silent = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(silent, 16), 0);
  socklen_t len = sizeof(addr);
  getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string silent_address = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  auto row = [](const std::string& id, const std::string& metrics_address, double age) {
    RegisteredProcess p;
    p.record = ProcessRecord{id, kRoleEdge, "", metrics_address, "h", 1, "v"};
    p.heartbeat_age_seconds = age;
    return p;
  };
  std::vector<RegisteredProcess> rows;
  rows.push_back(row("serving", "127.0.0.1:" + std::to_string((*serving)->port()), 0.1));
  rows.push_back(row("standby", "127.0.0.1:" + std::to_string((*standby)->port()), 0.1));
  for (int i = 0; i < 8; ++i) rows.push_back(row("silent", silent_address, 0.1));
  rows.push_back(row("stale", silent_address, 9));
  const auto start = std::chrono::steady_clock::now();
  auto health = AssessProcesses(rows, ProcessHealthOptions{});
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  close(silent);
  ASSERT_EQ(health.size(), rows.size());
  EXPECT_EQ(health[0].health, "ok");
  EXPECT_EQ(health[0].healthz_status, 200);
  EXPECT_EQ(health[1].health, "standby");
  EXPECT_EQ(health[1].healthz_status, 503);
  for (int i = 2; i < 10; ++i) EXPECT_EQ(health[i].health, "unreachable");
  EXPECT_EQ(health[10].health, "stale");
  EXPECT_EQ(health[10].healthz_status, -1);  // a stale row is not probed
  // Eight silent processes at 300 ms each: in parallel, well under their sum (2.4 s).
  EXPECT_LT(took, 1.5);
}

}  // namespace
}  // namespace fedlora::coordinator

#endif  // FEDLORA_HAVE_POSTGRESQL
