// `fedlora cluster` (coordinator/cluster.h): the plan of processes and ports, and a process test
// of `cluster up` (PostgreSQL, leader + standby, two edges, HAProxy, each its own process)
// serving real devices through HAProxy and the edges across a kill -9 of the leader, then
// `cluster down`.
#if FEDLORA_HAVE_POSTGRESQL

#include "fedlora/coordinator/cluster.h"

#include <signal.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "fedlora/coordinator/metrics_http.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "multihost_testutil.h"

namespace fedlora {
namespace {

using ::testing::HasSubstr;

TEST(ClusterPlanTest, DatabaseCoordinatorsEdgesAggregatorsThenHaproxyOnDistinctPorts) {
  coordinator::ClusterSpec spec;
  spec.dir = "/tmp/c";
  spec.model = "m";
  spec.fedlora_binary = "/bin/fedlora";
  spec.standbys = 2;
  spec.port = 50051;
  auto plan = coordinator::PlanCluster(spec);  // edges and aggregators: 2 each by default
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<std::string> roles;
  std::set<int> ports;
  for (const auto& p : plan->processes) {
    roles.push_back(p.role);
    if (p.listen_port) {
      EXPECT_TRUE(ports.insert(p.listen_port).second) << p.name;
    }
    if (p.metrics_port) {
      EXPECT_TRUE(ports.insert(p.metrics_port).second) << p.name;
    }
  }
  EXPECT_EQ(roles, (std::vector<std::string>{"database", "leader", "standby", "standby", "edge",
                                             "edge", "aggregator", "aggregator", "front"}));
  // The coordinators advertise their own address to the edges (in the window they publish).
  for (int i = 0; i < 3; ++i) {
    const auto& c = plan->processes[i + 1];
    const std::string listen = "127.0.0.1:" + std::to_string(c.listen_port);
    EXPECT_THAT(c.args, ::testing::IsSupersetOf(std::vector<std::string>{
                            "--holder", "coord-" + std::to_string(i), "--advertise", listen}));
  }
  // HAProxy's backends are the edges, checked on their metrics ports, spread by connections.
  ASSERT_EQ(plan->haproxy.backends.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const auto& e = plan->processes[i + 4];
    EXPECT_EQ(e.name, "edge-" + std::to_string(i));
    EXPECT_EQ(plan->haproxy.backends[i].port, e.listen_port);
    EXPECT_EQ(plan->haproxy.backends[i].health_port, e.metrics_port);
    EXPECT_THAT(e.args, ::testing::IsSupersetOf(std::vector<std::string>{
                            "coordinator", "edge", "--state", "/tmp/c/state"}));
    EXPECT_EQ(e.ready_line, "listening on");
  }
  // The aggregators register their own address in the database (the leader names it in
  // devices' tasks); ready once registered; not HAProxy's backends.
  std::set<int> backend_ports;
  for (const auto& b : plan->haproxy.backends) backend_ports.insert(b.port);
  for (int i = 0; i < 2; ++i) {
    const auto& a = plan->processes[i + 6];
    EXPECT_EQ(a.name, "agg-" + std::to_string(i));
    const std::string listen = "127.0.0.1:" + std::to_string(a.listen_port);
    EXPECT_THAT(a.args,
                ::testing::ElementsAre("coordinator", "aggregator", "--state", "/tmp/c/state",
                                       "--listen", listen, "--advertise", listen, "--metrics",
                                       "127.0.0.1:" + std::to_string(a.metrics_port)));
    EXPECT_EQ(a.ready_line, "registered as");
    EXPECT_EQ(backend_ports.count(a.listen_port), 0u);
  }
  EXPECT_EQ(plan->haproxy.balance, "leastconn");
  EXPECT_EQ(plan->haproxy.listen_port, 50051);
  EXPECT_TRUE(plan->processes[0].unprivileged);  // postgres refuses root
  spec.edges = -1;
  EXPECT_EQ(coordinator::PlanCluster(spec).status().code(), absl::StatusCode::kInvalidArgument);
  spec.edges = 2;
  spec.standbys = -1;
  EXPECT_EQ(coordinator::PlanCluster(spec).status().code(), absl::StatusCode::kInvalidArgument);
  spec.standbys = 1;
  spec.aggregators = -1;
  EXPECT_EQ(coordinator::PlanCluster(spec).status().code(), absl::StatusCode::kInvalidArgument);
  spec.aggregators = 2;
  spec.shard_size = -1;
  EXPECT_EQ(coordinator::PlanCluster(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

// --aggregators 0: the leader runs every shard itself; nothing else changes.
TEST(ClusterPlanTest, NoAggregatorsPlansNone) {
  coordinator::ClusterSpec spec;
  spec.dir = "/tmp/c";
  spec.model = "m";
  spec.aggregators = 0;
  auto plan = coordinator::PlanCluster(spec);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<std::string> roles;
  for (const auto& p : plan->processes) roles.push_back(p.role);
  EXPECT_EQ(roles,
            (std::vector<std::string>{"database", "leader", "standby", "edge", "edge", "front"}));
}

// --edges 0: HAProxy in front of the coordinators themselves (only the leader listens).
TEST(ClusterPlanTest, NoEdgesPutsHaproxyInFrontOfTheCoordinators) {
  coordinator::ClusterSpec spec;
  spec.dir = "/tmp/c";
  spec.model = "m";
  spec.standbys = 1;
  spec.edges = 0;
  auto plan = coordinator::PlanCluster(spec);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->processes.size(), 6u);  // and two aggregators, which are no backends
  EXPECT_EQ(plan->processes.back().role, "front");
  ASSERT_EQ(plan->haproxy.backends.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(plan->haproxy.backends[i].name, "coord-" + std::to_string(i));
    EXPECT_EQ(plan->haproxy.backends[i].port, plan->processes[i + 1].listen_port);
  }
  EXPECT_EQ(plan->haproxy.balance, "first");
}

// A later `up` of the same folder keeps the database's port (the state folder names it).
TEST(ClusterPlanTest, ALaterUpKeepsTheDatabasePortTheStateFolderNames) {
  coordinator::ClusterSpec spec;
  spec.dir = ::testing::TempDir() + "/cluster_again";
  spec.model = "m";
  std::filesystem::create_directories(spec.dir + "/state");
  std::ofstream(spec.dir + "/state/store")
      << "host=127.0.0.1 port=5555 user=fedlora dbname=fedlora\n";
  auto plan = coordinator::PlanCluster(spec);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->pg_port, 5555);
  EXPECT_THAT(plan->conninfo, HasSubstr("port=5555 "));
  std::ofstream(spec.dir + "/state/store") << "postgresql:///other";
  EXPECT_EQ(coordinator::PlanCluster(spec).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ClusterPlanTest, MissingServerBinariesFailNamingTheSetupProfile) {
  coordinator::ClusterSpec spec;
  spec.dir = ::testing::TempDir() + "/cluster_missing";
  spec.model = "m";
  spec.fedlora_binary = "/bin/true";
  spec.pg_bin = "/nonexistent";
  auto plan = coordinator::PlanCluster(spec);
  ASSERT_TRUE(plan.ok());
  bool ready = false;
  absl::Status s = coordinator::RunCluster(
      *plan, [] { return true; }, [&](const nlohmann::json&) { ready = true; },
      [](const std::string&) {});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("bash scripts/setup.sh test"));
  EXPECT_FALSE(ready);
}

class ClusterProcessTest : public MultiHostProcessTest {
 protected:
  void SetUp() override {
    MultiHostProcessTest::SetUp();
    if (IsSkipped()) return;
    // Under /tmp and world-traversable: as root, PostgreSQL runs as nobody in DIR/pg.
    std::string tmpl = "/tmp/fedlora-cluster-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    ::chmod(tmpl.c_str(), 0755);
    cluster_ = tmpl;
  }
  void TearDown() override {
    if (!cluster_.empty()) std::filesystem::remove_all(cluster_);
  }
  std::string cluster_;
  // `coordinator init` flags through `cluster up --init-arg=`: a population of `devices`
  // devices, all sampled, tokens for each, `rounds` rounds of two training steps, a 6 s
  // selection window.
  static void AddInitArgs(std::vector<std::string>& args, int devices, int rounds) {
    const std::string n = std::to_string(devices);
    const std::vector<std::string> flags = {
        "--goal",  n,   "--population",       n,   "--rounds",  std::to_string(rounds),
        "--steps", "2", "--batch",            "2", "--seq",     "32",
        "--noise-multiplier", "1.0", "--tokens", n, "--selection-window", "6",
        "--train-deadline",   "120"};
    for (const std::string& a : flags) args.push_back("--init-arg=" + a);
  }
};

TEST_F(ClusterProcessTest, UpServesDevicesThroughHaproxyAndEdgesAcrossALeaderKillAndDownStopsAll) {
  const int port = testing::FreeLoopbackPort();
  // No aggregators: this population's rounds are not sharded (two devices), so they would idle.
  const std::vector<std::string> base = {"cluster",       "up",
                                         "--dir",         cluster_,
                                         "--model",       Model(),
                                         "--port",        std::to_string(port),
                                         "--lease-ttl",   std::to_string(LeaseTtl()),
                                         "--aggregators", "0",
                                         "--json"};
  std::vector<std::string> args = base;
  AddInitArgs(args, /*devices=*/2, /*rounds=*/2);
  auto up = StartFedlora(args, dir_ + "/up");
  const std::string line = up.WaitForLine("\"endpoint\"", 180);
  ASSERT_FALSE(line.empty()) << up.Out() << up.Err();
  const auto summary = nlohmann::json::parse(line);
  EXPECT_EQ(summary["endpoint"], "127.0.0.1:" + std::to_string(port));
  ASSERT_EQ(summary["processes"].size(), 6u) << summary.dump();
  std::vector<std::string> roles;
  for (const auto& p : summary["processes"]) roles.push_back(p["role"]);
  EXPECT_EQ(roles, (std::vector<std::string>{"database", "leader", "standby", "edge", "edge",
                                             "front"}));
  EXPECT_TRUE(std::filesystem::exists(cluster_ + "/haproxy.cfg"));
  EXPECT_TRUE(std::filesystem::exists(cluster_ + "/cluster.json"));
  std::vector<int> pids;
  for (const auto& p : summary["processes"]) pids.push_back(p["pid"]);
  // A second `up` on the same folder is refused while this one runs.
  auto again = testing::RunFedlora("cluster up --dir " + cluster_ + " --model " + Model() +
                                       " --port " + std::to_string(testing::FreeLoopbackPort()),
                                   dir_);
  EXPECT_NE(again.exit_code, 0);
  EXPECT_THAT(again.err, HasSubstr("already runs"));
  // Devices enrol and train through HAProxy with the cluster's CA.
  ca_ = summary["ca"];
  std::ifstream in(summary["tokens_file"].get<std::string>());
  for (std::string t; std::getline(in, t);) tokens_.push_back(t);
  ASSERT_EQ(tokens_.size(), 2u);
  Enroll(0, port, false);
  Enroll(1, port, false);
  const auto phone = [&](int i) {
    return StartDevice(i, port, false, 2, false, {"--epsilon-budget", "1000"}, {}, true);
  };
  auto d0 = phone(0);
  auto d1 = phone(1);
  // Once round 1 committed, kill -9 the leader (the process `cluster up` started first).
  const std::string leader_log = summary["processes"][1]["log"];
  const auto committed = [&](const std::string& log) {
    std::ifstream f(log);
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return text.find("committed: adapter version 2") != std::string::npos;
  };
  for (int i = 0; i < 3000 && !committed(leader_log); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(committed(leader_log)) << d0.Out() << d0.Err();
  ASSERT_EQ(::kill(pids[1], SIGKILL), 0);
  for (ChildProcess* d : {&d0, &d1}) {
    ASSERT_EQ(d->Wait(300), 0) << d->Out() << d->Err();
    EXPECT_THAT(d->Out(), HasSubstr("2 rounds completed"));
  }
  // The devices' calls went through the edges (HAProxy's backends), which forwarded to the
  // leader of the moment: the edges followed the standby's window after the takeover.
  const auto forwarded = [&](const nlohmann::json& p) {
    return MetricSum(p["metrics_port"], "fedlora_edge_forwarded_total");
  };
  EXPECT_GT(forwarded(summary["processes"][3]) + forwarded(summary["processes"][4]), 0);
  // The standby leads now, and `coordinator status` says so.
  auto st = testing::RunFedlora("coordinator status --json --state " + cluster_ + "/state", dir_);
  ASSERT_EQ(st.exit_code, 0) << st.err;
  const auto status = nlohmann::json::parse(st.out);
  EXPECT_EQ(status["lease"]["holder"], "coord-1") << st.out;
  EXPECT_EQ(status["rounds_committed"], 2) << st.out;
  // `cluster down` stops everything in bounded time; `up` exits 0.
  auto down = testing::RunFedlora("cluster down --json --dir " + cluster_, dir_);
  ASSERT_EQ(down.exit_code, 0) << down.err;
  EXPECT_THAT(down.out, HasSubstr("\"supervisor\""));
  EXPECT_EQ(up.Wait(60), 0) << up.Out() << up.Err();
  for (int pid : pids) EXPECT_NE(::kill(pid, 0), 0) << "pid " << pid << " still runs";
  EXPECT_FALSE(std::filesystem::exists(cluster_ + "/cluster.json"));
  // A second `up` of the folder resumes: the same database (its port) and the run's state.
  auto again_up = StartFedlora(base, dir_ + "/up_again");  // no --init-arg: the state exists
  const std::string line2 = again_up.WaitForLine("\"endpoint\"", 180);
  ASSERT_FALSE(line2.empty()) << again_up.Out() << again_up.Err();
  const auto summary2 = nlohmann::json::parse(line2);
  EXPECT_EQ(summary2["processes"][0]["port"], summary["processes"][0]["port"]);
  auto st2 = testing::RunFedlora("coordinator status --json --state " + cluster_ + "/state", dir_);
  ASSERT_EQ(st2.exit_code, 0) << st2.err;
  EXPECT_EQ(nlohmann::json::parse(st2.out)["rounds_committed"], 2) << st2.out;
  again_up.Kill(SIGINT);  // Ctrl-C stops it all
  EXPECT_EQ(again_up.Wait(60), 0) << again_up.Out() << again_up.Err();
  for (const auto& p : summary2["processes"]) {
    EXPECT_NE(::kill(p["pid"].get<int>(), 0), 0) << p.dump();
  }
}

// Two aggregators and a sharded population (`--shard-size 3`: four devices, two shards of
// two): the round's shards are summed by the aggregator processes, one each, and no
// secure-aggregation call reached the leader; `down` stops every process.
TEST_F(ClusterProcessTest, AggregatorProcessesSumTheShardsOfAShardedRoundAndDownStopsThem) {
  const int port = testing::FreeLoopbackPort();
  std::vector<std::string> args = {"cluster",       "up",
                                   "--dir",         cluster_,
                                   "--model",       Model(),
                                   "--port",        std::to_string(port),
                                   "--lease-ttl",   std::to_string(LeaseTtl()),
                                   "--standbys",    "0",
                                   "--edges",       "1",
                                   "--aggregators", "2",
                                   "--shard-size",  "3",
                                   "--json"};
  AddInitArgs(args, /*devices=*/4, /*rounds=*/1);
  auto up = StartFedlora(args, dir_ + "/up");
  const std::string line = up.WaitForLine("\"endpoint\"", 180);
  ASSERT_FALSE(line.empty()) << up.Out() << up.Err();
  const auto summary = nlohmann::json::parse(line);
  std::vector<std::string> roles;
  for (const auto& p : summary["processes"]) roles.push_back(p["role"]);
  ASSERT_EQ(roles, (std::vector<std::string>{"database", "leader", "edge", "aggregator",
                                             "aggregator", "front"}))
      << summary.dump();
  EXPECT_EQ(summary["max_shard_size"], 3);
  ca_ = summary["ca"];
  std::ifstream in(summary["tokens_file"].get<std::string>());
  for (std::string t; std::getline(in, t);) tokens_.push_back(t);
  ASSERT_EQ(tokens_.size(), 4u);
  std::vector<ChildProcess> phones;
  for (int i = 0; i < 4; ++i) Enroll(i, port, false);
  for (int i = 0; i < 4; ++i) {
    phones.push_back(StartDevice(i, port, false, 1, false, {"--epsilon-budget", "1000"}, {}, true));
  }
  for (ChildProcess& d : phones) {
    ASSERT_EQ(d.Wait(300), 0) << d.Out() << d.Err();
    EXPECT_THAT(d.Out(), HasSubstr("1 rounds completed"));
  }
  // The devices learn of their shard's sum from its aggregator; the leader commits once both
  // shards answered.
  nlohmann::json status;
  for (int i = 0; i < 600; ++i) {
    auto st = testing::RunFedlora("coordinator status --json --state " + cluster_ + "/state", dir_);
    ASSERT_EQ(st.exit_code, 0) << st.err;
    status = nlohmann::json::parse(st.out);
    if (status["rounds_committed"] == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(status["rounds_committed"], 1) << status.dump();
  auto summed = coordinator::AggregatorShardsSummed(summary);
  ASSERT_TRUE(summed.ok()) << summed.status();
  EXPECT_EQ(*summed, (std::map<std::string, int64_t>{{"agg-0", 1}, {"agg-1", 1}}));
  const int leader_metrics = summary["processes"][1]["metrics_port"];
  for (const char* method : {"AdvertiseKeys", "ShareKeys", "MaskedInput", "Unmasking"}) {
    auto bytes = coordinator::ScrapeMetric("127.0.0.1", leader_metrics,
                                           "fedlora_bytes_received_total", {{"method", method}});
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    EXPECT_EQ(*bytes, 0) << method << " reached the leader";
  }
  auto down = testing::RunFedlora("cluster down --json --dir " + cluster_, dir_);
  ASSERT_EQ(down.exit_code, 0) << down.err;
  EXPECT_EQ(up.Wait(60), 0) << up.Out() << up.Err();
  for (const auto& p : summary["processes"]) {
    EXPECT_NE(::kill(p["pid"].get<int>(), 0), 0) << p.dump();
  }
  // Each aggregator stopped on SIGTERM (cleanly: it unregisters) and logged what it summed.
  for (const char* agg : {"agg-0", "agg-1"}) {
    std::ifstream log(cluster_ + "/logs/" + agg + ".out");
    const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    EXPECT_THAT(text, HasSubstr("stopped; shards summed 1, dropped 0")) << agg;
  }
}

}  // namespace
}  // namespace fedlora

#endif  // FEDLORA_HAVE_POSTGRESQL
