// secagg.max_shard_size: the sim rehearses the coordinator's sharded secure aggregation
// (coordinator/shard_plan.h) on its in-process round engine, reports each round's shards and
// the shard minimum, and keeps the coordinator's epsilons (which follow the shard minimum).
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "fedlora/coordinator/run_epsilons.h"
#include "fedlora/sim/report.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sim_testutil.h"

namespace fedlora::sim {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// 12 devices, about 11 sampled a round; shards of at most 4 (3 shards of 3 to 4 devices): the
// smallest shard any split of more than 4 devices has is 2, so the shard minimum is
// max(2, min(ceil(0.8 x 11), ceil(0.8 x 2))) = 2 survivors, against the round's 9.
SimConfig ShardedConfig(const std::string& out) {
  SimConfig c = PoissonConfig(out);
  c.rounds = 2;
  c.poisson_rate = 0.9;
  c.max_shard_size = 4;
  return c;
}

TEST(ShardRoundsTest, CoordinatorEngineCommitsRoundsInShardsAndReportsThem) {
  SimConfig c = ShardedConfig("fedlora_shard_rounds");
  auto r = RunSim(c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->summary.engine, "coordinator round engine (virtual clock)");
  StoreView v = OpenStore(c);
  ASSERT_TRUE(v.store);
  ASSERT_EQ(r->rounds.size(), 2u);
  int committed = 0;
  for (const RoundRecord& rec : r->rounds) {
    const nlohmann::json j = rec.ToJson();  // a line of rounds.jsonl
    if (rec.aborted) continue;  // e.g. at selection (more than max_cohort): no tasks, no shards
    ++committed;
    // ceil(n / 4) balanced shards, read from the tasks the coordinator handed out.
    EXPECT_EQ(rec.shards, (rec.sampled + 3) / 4) << j.dump();
    EXPECT_GE(rec.shards, 2) << j.dump();
    EXPECT_EQ(j["shards"].get<int>(), rec.shards);
    EXPECT_EQ(j["shard_min"].get<int>(), 2) << j.dump();
    EXPECT_EQ(rec.survivors, v.rounds[rec.round].summed);
    EXPECT_EQ(rec.survivors, rec.sampled) << "no dropout: every shard is unmasked";
  }
  EXPECT_GT(committed, 0);
  // summary.json: each round's shards and the shard minimum; the epsilons are the store's.
  const nlohmann::json summary = r->summary.ToJson();
  ASSERT_EQ(summary["secagg_shards"]["per_round"].size(), 2u);
  EXPECT_EQ(summary["secagg_shards"]["per_round"][0].get<int>(), r->rounds[0].shards);
  EXPECT_EQ(summary["secagg_shards"]["shard_min"].get<int>(), 2);
  EXPECT_EQ(summary["config"]["secagg.max_shard_size"].get<int>(), 4);
  auto eps = coordinator::ComputeRunEpsilons(*v.store, r->summary.delta);
  ASSERT_TRUE(eps.ok()) << eps.status();
  EXPECT_DOUBLE_EQ(r->summary.epsilon, eps->observers);
  EXPECT_DOUBLE_EQ(r->summary.epsilon_coordinator, eps->coordinator);

  // report.md says it; rounds.csv has the columns.
  const std::string dir = (fs::path(c.out) / "report").string();
  auto w = ReportWriter::Open(dir);
  ASSERT_TRUE(w.ok()) << w.status();
  for (const RoundRecord& rec : r->rounds) ASSERT_TRUE(w->AppendRound(rec).ok());
  ASSERT_TRUE(w->Finish(r->summary).ok());
  std::stringstream md, csv;
  md << std::ifstream(dir + "/report.md").rdbuf();
  csv << std::ifstream(dir + "/rounds.csv").rdbuf();
  EXPECT_THAT(md.str(), HasSubstr("secure-aggregation sessions (shards) per round"));
  EXPECT_THAT(md.str(), HasSubstr("each shard needs 2 survivors"));
  EXPECT_THAT(csv.str(), HasSubstr(",shards,shard_min\n"));
}

// Every survivor minimum the coordinator charged a round for (its mechanisms' n_min).
std::set<int> ChargedMinimums(const SimConfig& c) {
  std::set<int> mins;
  StoreView v = OpenStore(c);
  if (!v.store) return mins;
  auto charges = v.store->Charges();
  EXPECT_TRUE(charges.ok());
  if (!charges.ok()) return mins;
  for (const auto& ch : *charges) {
    const nlohmann::json mechanism = nlohmann::json::parse(ch.mechanism);
    for (const auto& m : mechanism.at("ddg")) mins.insert(m.at("n_min").get<int>());
  }
  return mins;
}

// The noise of every device is calibrated for the shard minimum (2 survivors rather than 9),
// and the coordinator sees each shard's sum: every round is charged for the shard minimum, and
// the epsilon against the coordinator is that charge's, above the same run's unsharded one
// (the noise is recalibrated, so only by the discretization's terms), never below.
TEST(ShardRoundsTest, EpsilonAgainstTheCoordinatorFollowsTheShardMinimum) {
  SimConfig c = ShardedConfig("fedlora_shard_eps");
  auto sharded = RunSim(c);
  ASSERT_TRUE(sharded.ok()) << sharded.status();
  EXPECT_EQ(ChargedMinimums(c), std::set<int>({2}));
  c.max_shard_size = 0;
  fs::remove_all(c.out);
  auto whole = RunSim(c);
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(ChargedMinimums(c), std::set<int>({9}));
  ASSERT_EQ(sharded->summary.max_rounds_per_device, whole->summary.max_rounds_per_device);
  for (const RoundRecord& rec : whole->rounds) {
    if (rec.aborted) continue;
    EXPECT_EQ(rec.shards, 1) << rec.ToJson().dump();
    EXPECT_EQ(rec.shard_min, 9) << rec.ToJson().dump();
  }
  EXPECT_GT(sharded->summary.epsilon_coordinator, whole->summary.epsilon_coordinator);
}

// secagg.max_shard_size is checked up front, naming the key: 1 and 2 are no shards; the
// simulator's own sampling cannot shard (it says which engine to use); the coordinator engine
// and the gRPC rehearsal take it.
TEST(ShardRoundsTest, InvalidMaxShardSizeIsRefusedNamingTheKey) {
  SimConfig c = ShardedConfig("fedlora_shard_invalid");
  EXPECT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
  c.max_shard_size = 2;
  absl::Status s = ValidateConfig(c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("secagg.max_shard_size: must be 0"));
  c.max_shard_size = -1;
  EXPECT_THAT(ValidateConfig(c).message(), HasSubstr("secagg.max_shard_size"));
  EXPECT_FALSE(RunSim(c).ok());

  c.max_shard_size = 4;
  c.engine = RoundEngine::kSimulator;
  s = ValidateConfig(c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("secagg.max_shard_size"));
  EXPECT_THAT(s.message(), HasSubstr("rounds.engine = coordinator"));
  c.engine = RoundEngine::kAuto;
  c.sampling = SamplingMode::kFixed;  // auto then runs the simulator's own sampling
  s = ValidateConfig(c);
  EXPECT_THAT(s.message(), HasSubstr("secagg.max_shard_size"));
  EXPECT_THAT(s.message(), HasSubstr("rounds.sampling is not poisson"));
  c.sampling = SamplingMode::kPoisson;
  c.engine = RoundEngine::kCoordinator;
  EXPECT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
  c.transport = Transport::kGrpc;
  c.engine = RoundEngine::kSimulator;  // not used over gRPC: the coordinator process shards
  EXPECT_TRUE(ValidateConfig(c).ok()) << ValidateConfig(c);
}

}  // namespace
}  // namespace fedlora::sim
