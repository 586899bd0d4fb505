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
#include "fedlora/common/lora_method.h"
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

// Runs `sim --transport grpc` with `extra` (4 devices, all sampled, 2 rounds, tiny model) and
// returns its coordinator's state folder; `out` is removed by the caller.
std::string RunGrpcSim(const fs::path& out, const std::string& extra) {
  fs::remove_all(out);
  const std::string args =
      "sim --transport grpc --json --threads 2 --model " + Fixture() +
      " --devices 4 --cohort 4 --rounds 2 --out " + out.string() +
      " --set rounds.eval_users=2 --set local.steps=2 --set rounds.personalize_steps=1 " + extra;
  const testing::CliResult r = testing::RunFedlora(args, fs::temp_directory_path().string());
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  return (out / "grpc" / "coordinator").string();
}

// Both rounds committed; the initial and the latest adapter, and the B positions.
struct MethodRun {
  AdapterBlob initial, latest;
  std::vector<bool> is_b;
  std::string optimizer_state;
};
MethodRun ReadRun(const std::string& state_dir) {
  MethodRun m;
  auto store = coordinator::OpenSqliteStore(state_dir);
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return m;
  auto versions = (*store)->ListAdapterVersions();
  EXPECT_TRUE(versions.ok());
  EXPECT_EQ(versions->size(), 3u);  // the initial adapter and two committed rounds
  m.initial = *DecodeAdapterBlob(*(*store)->ReadBlob(versions->front().sha256));
  m.latest = *DecodeAdapterBlob(*(*store)->ReadBlob(versions->back().sha256));
  auto b = BPositions(m.latest);
  EXPECT_TRUE(b.ok()) << b.status();
  m.is_b.assign(m.latest.values.size(), false);
  for (size_t i : *b) m.is_b[i] = true;
  m.optimizer_state = *(*store)->OptimizerState();
  return m;
}

// The Hadamard rotation pads a vector of n values to the next power of two.
double Padded(size_t n) {
  size_t p = 1;
  while (p < n) p *= 2;
  return static_cast<double>(p);
}

// The (padded) dimension the coordinator charged and devices masked: the first charge's.
double ChargedDim(const std::string& state_dir) {
  auto store = coordinator::OpenSqliteStore(state_dir);
  auto charges = (*store)->Charges();
  EXPECT_TRUE(charges.ok() && !charges->empty());
  const auto j = nlohmann::json::parse(charges->front().mechanism);
  return j.at("ddg").at(0).at("dim").get<double>();  // the values' mechanism
}

TEST(GrpcTransportTest, FfaWithFedAdamTrainsAndSharesOnlyB) {
  if (!fs::exists(Fixture())) GTEST_SKIP() << "no ../shared fixture";
  const fs::path out =
      fs::temp_directory_path() / ("fedlora_sim_grpc_ffa_" + std::to_string(getpid()));
  const std::string state = RunGrpcSim(out, "--set lora.method=ffa --set server.optimizer=fedadam");
  const MethodRun m = ReadRun(state);
  ASSERT_EQ(m.latest.values.size(), m.initial.values.size());
  size_t n_b = 0, b_moved = 0;
  for (size_t i = 0; i < m.latest.values.size(); ++i) {
    if (m.is_b[i]) {
      ++n_b;
      b_moved += m.latest.values[i] != m.initial.values[i];
    } else {
      ASSERT_EQ(m.latest.values[i], m.initial.values[i]) << "A moved at " << i;  // frozen
    }
  }
  EXPECT_GT(b_moved, n_b / 2);
  // Only B is summed: the charged (padded) dimension is B's, half of the whole adapter's.
  EXPECT_EQ(ChargedDim(state), Padded(n_b));
  EXPECT_LT(ChargedDim(state), Padded(m.latest.values.size()));
  // FedAdam's moments (m and v of every B value) were committed with the version.
  const size_t nl = m.optimizer_state.find('\n');
  ASSERT_NE(nl, std::string::npos);
  EXPECT_THAT(m.optimizer_state.substr(0, nl), HasSubstr("fedadam"));
  EXPECT_EQ(m.optimizer_state.size() - nl - 1, 16 * n_b);
  fs::remove_all(out);
}

TEST(GrpcTransportTest, FedsaSharesOnlyAAndEachDeviceKeepsItsOwnB) {
  if (!fs::exists(Fixture())) GTEST_SKIP() << "no ../shared fixture";
  const fs::path out =
      fs::temp_directory_path() / ("fedlora_sim_grpc_fedsa_" + std::to_string(getpid()));
  const std::string state = RunGrpcSim(out, "--set lora.method=fedsa");
  const MethodRun m = ReadRun(state);
  size_t n_a = 0, a_moved = 0;
  for (size_t i = 0; i < m.latest.values.size(); ++i) {
    if (!m.is_b[i]) {
      ++n_a;
      a_moved += m.latest.values[i] != m.initial.values[i];
    } else {
      ASSERT_EQ(m.latest.values[i], m.initial.values[i]) << "the global B moved at " << i;
    }
  }
  EXPECT_GT(a_moved, n_a / 2);
  EXPECT_EQ(ChargedDim(state), Padded(n_a));  // only A is summed
  EXPECT_LT(ChargedDim(state), Padded(m.latest.values.size()));
  // Each device that trained kept its B in its state folder: B-sized, not the global B.
  int kept = 0;
  for (int d = 0; d < 4; ++d) {
    const fs::path path =
        out / "grpc" / "devices" / std::to_string(d) / "fedsa" / "personal_b.blob";
    if (!fs::exists(path)) continue;
    ++kept;
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    auto own = DecodeAdapterBlob(ss.str());
    ASSERT_TRUE(own.ok()) << own.status();
    ASSERT_EQ(own->values.size(), m.latest.values.size() - n_a);
    size_t differs = 0, j = 0;
    for (size_t i = 0; i < m.latest.values.size(); ++i) {
      if (m.is_b[i]) differs += own->values[j++] != m.initial.values[i];
    }
    EXPECT_GT(differs, 0u) << "device " << d << " kept an untrained B";
  }
  EXPECT_EQ(kept, 4);  // q = 1: every device trained
  fs::remove_all(out);
}

// The lines of a run's rounds.jsonl, parsed.
std::vector<nlohmann::json> RoundLines(const fs::path& out) {
  std::ifstream in(out / "rounds.jsonl");
  std::vector<nlohmann::json> rounds;
  for (std::string line; std::getline(in, line);) rounds.push_back(nlohmann::json::parse(line));
  return rounds;
}

// secagg.max_shard_size reaches the coordinator process (coordinator.json, pinned as `init
// --max-shard-size` would): 4 sampled devices with shards of at most 3 run as 2 sessions of 2,
// each needing 2 survivors; both rounds commit and rounds.jsonl / summary.json say so.
TEST(GrpcTransportTest, ShardedRoundsRunInTheCoordinatorProcess) {
  if (!fs::exists(Fixture())) GTEST_SKIP() << "no ../shared fixture";
  const fs::path out =
      fs::temp_directory_path() / ("fedlora_sim_grpc_shard_" + std::to_string(getpid()));
  const std::string state =
      RunGrpcSim(out, "--set secagg.max_shard_size=3 --set secagg.dropout_masked=0");
  std::stringstream config, summary;
  config << std::ifstream(fs::path(state) / "coordinator.json").rdbuf();
  EXPECT_EQ(nlohmann::json::parse(config.str())["max_shard_size"].get<int>(), 3);
  ReadRun(state);  // both rounds committed (three adapter versions)
  const std::vector<nlohmann::json> rounds = RoundLines(out);
  for (const nlohmann::json& j : rounds) {
    EXPECT_FALSE(j["aborted"].get<bool>()) << j.dump();
    EXPECT_EQ(j["sampled"].get<int>(), 4) << j.dump();
    EXPECT_EQ(j["survivors"].get<int>(), 4) << j.dump();
    EXPECT_EQ(j["shards"].get<int>(), 2) << j.dump();
    EXPECT_EQ(j["shard_min"].get<int>(), 2) << j.dump();
  }
  EXPECT_EQ(rounds.size(), 2u);
  summary << std::ifstream(out / "summary.json").rdbuf();
  const nlohmann::json sj = nlohmann::json::parse(summary.str());
  EXPECT_EQ(sj["secagg_shards"]["per_round"], nlohmann::json::array({2, 2}));
  EXPECT_EQ(sj["secagg_shards"]["shard_min"].get<int>(), 2);
  auto store = coordinator::OpenSqliteStore(state);
  ASSERT_TRUE(store.ok()) << store.status();
  auto eps = coordinator::ComputeRunEpsilons(**store, sj["delta"].get<double>());
  ASSERT_TRUE(eps.ok()) << eps.status();
  EXPECT_DOUBLE_EQ(sj["epsilon_coordinator"].get<double>(), eps->coordinator);
  fs::remove_all(out);
}

// grpc.cluster: the same sharded rounds on a local cluster (PostgreSQL, a leader, a standby,
// two edges, two aggregators, HAProxy; coordinator/cluster.h), the devices through HAProxy and
// the edges with the real crypto, their shards' secure aggregation at the aggregator
// processes: both rounds commit as 2 shards of 2, both summed by aggregators, the summary says
// what ran and how many shards each aggregator summed, and every process is stopped (the
// cluster log) and its folder removed at the end.
TEST(GrpcTransportTest, ShardedRoundsRunOnAClusterThroughHaproxyAndEdges) {
  if (!fs::exists(Fixture())) GTEST_SKIP() << "no ../shared fixture";
  const fs::path out =
      fs::temp_directory_path() / ("fedlora_sim_grpc_cluster_" + std::to_string(getpid()));
  RunGrpcSim(out,
             "--set secagg.max_shard_size=3 --set secagg.dropout_masked=0 --set grpc.cluster=true "
             "--set grpc.edges=2 --set grpc.standbys=1 --set grpc.aggregators=2");
  std::stringstream summary, log;
  const std::vector<nlohmann::json> rounds = RoundLines(out);
  for (const nlohmann::json& j : rounds) {
    EXPECT_FALSE(j["aborted"].get<bool>()) << j.dump();
    EXPECT_EQ(j["survivors"].get<int>(), 4) << j.dump();
    EXPECT_EQ(j["shards"].get<int>(), 2) << j.dump();
    EXPECT_EQ(j.value("shards_on_aggregators", 0), 2) << j.dump();
  }
  EXPECT_EQ(rounds.size(), 2u);
  summary << std::ifstream(out / "summary.json").rdbuf();
  const nlohmann::json sj = nlohmann::json::parse(summary.str());
  const std::string engine = sj["engine"];
  for (const char* part :
       {"a cluster over gRPC", "database postgres", "leader coord-0", "standby coord-1",
        "edge edge-0", "edge edge-1", "aggregator agg-0", "aggregator agg-1", "front haproxy"}) {
    EXPECT_THAT(engine, HasSubstr(part));
  }
  EXPECT_EQ(sj["secagg_shards"]["per_round"], nlohmann::json::array({2, 2}));
  // Shards go round robin over the live aggregators: both took part, 4 shards in all.
  const nlohmann::json on = sj["secagg_shards"].value("on_aggregators", nlohmann::json::object());
  ASSERT_EQ(on.size(), 2u) << sj.dump();
  EXPECT_GT(on.value("agg-0", 0), 0);
  EXPECT_GT(on.value("agg-1", 0), 0);
  EXPECT_EQ(on.value("agg-0", 0) + on.value("agg-1", 0), 4);
  EXPECT_GT(sj["epsilon_coordinator"].get<double>(), 0);
  log << std::ifstream(out / "grpc" / "cluster.log").rdbuf();
  for (const char* name :
       {"postgres", "coord-0", "coord-1", "edge-0", "edge-1", "agg-0", "agg-1", "haproxy"}) {
    EXPECT_THAT(log.str(), HasSubstr(std::string("stopped ") + name)) << log.str();
  }
  EXPECT_THAT(log.str(), ::testing::Not(HasSubstr("exited with"))) << log.str();
  EXPECT_FALSE(fs::exists(out / "grpc" / "coordinator"));  // the state was in the cluster
  fs::remove_all(out);
}

TEST(GrpcTransportTest, ConfigsTheCoordinatorCannotRunAreRefusedBeforeAnyWork) {
  const fs::path out = fs::temp_directory_path() / ("fedlora_sim_grpc_bad_" + std::to_string(getpid()));
  fs::remove_all(out);
  const testing::CliResult r = testing::RunFedlora(
      "sim --transport grpc --dp central --set rounds.sampling=fixed --out " + out.string(),
      fs::temp_directory_path().string());
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("privacy.dp: must be distributed with run.transport = grpc"));
  EXPECT_THAT(r.err, HasSubstr("rounds.sampling: must be poisson"));
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("preparing model")));
  EXPECT_FALSE(fs::exists(out / "grpc"));
}

}  // namespace
}  // namespace fedlora::sim
