// The in-process rounds on the coordinator's own round engine (rounds.engine, default auto:
// distributed DP with Poisson sampling): the coordinator's RoundManager samples, sums and
// charges on a virtual clock, and what the simulator reports is what the coordinator's store
// holds.
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "fedlora/common/adapter_blob.h"
#include "fedlora/coordinator/run_epsilons.h"
#include "fedlora/coordinator/store.h"
#include "fedlora/sim/simulator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sim_testutil.h"

namespace fedlora::sim {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// (a) The store's ledger is what summary.json and rounds.jsonl report: each charged round's
// participants are the round's sampled devices, each committed round's summed devices its
// survivors, and both epsilons are ComputeRunEpsilons of that store.
TEST(CoordinatorEngineTest, ReportedRoundsAndEpsilonsAreTheStoresLedger) {
  SimConfig c = PoissonConfig("fedlora_engine_ledger");
  c.rounds = 3;
  c.poisson_rate = 0.9;
  auto r = RunSim(c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->summary.engine, "coordinator round engine (virtual clock)");
  EXPECT_EQ(r->summary.ToJson()["engine"], "coordinator round engine (virtual clock)");
  StoreView v = OpenStore(c);
  ASSERT_TRUE(v.store);
  ASSERT_EQ(r->rounds.size(), 3u);
  int committed = 0;
  for (const RoundRecord& rec : r->rounds) {
    const nlohmann::json j = rec.ToJson();  // a line of rounds.jsonl
    ASSERT_TRUE(v.rounds.count(rec.round)) << j.dump();
    const auto& sr = v.rounds[rec.round];
    EXPECT_EQ(j["aborted"].get<bool>(), sr.state != "committed") << j.dump();
    if (v.charged.count(rec.round)) {
      EXPECT_EQ(j["sampled"].get<int>(), static_cast<int>(v.participants[rec.round].size()));
    }
    if (sr.state == "committed") {
      ++committed;
      EXPECT_EQ(j["survivors"].get<int>(), sr.summed);
    }
  }
  EXPECT_GT(committed, 0);
  auto eps = coordinator::ComputeRunEpsilons(*v.store, r->summary.delta);
  ASSERT_TRUE(eps.ok()) << eps.status();
  const nlohmann::json summary = r->summary.ToJson();  // summary.json
  EXPECT_DOUBLE_EQ(summary["epsilon_observers"].get<double>(), eps->observers);
  EXPECT_DOUBLE_EQ(r->summary.epsilon_coordinator, eps->coordinator);
  EXPECT_EQ(summary["max_rounds_per_device"].get<int>(), eps->max_rounds_per_device);
  EXPECT_EQ(eps->rounds_charged, static_cast<int>(v.charged.size()));
  EXPECT_GT(eps->observers, 0);
  // The final adapter is the coordinator's latest version.
  auto latest = v.store->LatestAdapter();
  ASSERT_TRUE(latest.ok());
  auto blob = DecodeAdapterBlob(*v.store->ReadBlob(latest->sha256));
  ASSERT_TRUE(blob.ok());
  EXPECT_EQ(blob->values, r->global_adapter);
  EXPECT_EQ(latest->version, 1 + committed);
}

// (b) The simulator and the coordinator agree on aborted rounds: a round the coordinator's
// rules abort is aborted in the sim, and its epsilon moves exactly when the coordinator charged
// the round (aborted rounds included).
TEST(CoordinatorEngineTest, RoundsTheCoordinatorAbortsAreChargedAsItCharges) {
  SimConfig c = PoissonConfig("fedlora_engine_aborts");
  c.rounds = 4;
  c.poisson_rate = 0.5;    // about 6 of 12: often short of the minimum cohort
  c.min_survivors = 1.0;   // every sampled device must survive ...
  c.dropout_masked = 0.3;  // ... and many do not
  auto r = RunSim(c);
  ASSERT_TRUE(r.ok()) << r.status();
  StoreView v = OpenStore(c);
  ASSERT_TRUE(v.store);
  ASSERT_EQ(r->rounds.size(), 4u);
  double prev = 0;
  int aborted = 0, aborted_charged = 0;
  for (const RoundRecord& rec : r->rounds) {
    const bool store_committed =
        v.rounds.count(rec.round) && v.rounds[rec.round].state == "committed";
    EXPECT_EQ(rec.aborted, !store_committed) << rec.ToJson().dump();
    const bool charged = v.charged.count(rec.round) > 0;
    if (charged) {
      EXPECT_GT(rec.epsilon, prev) << "round " << rec.round << " was charged by the coordinator";
    } else {
      EXPECT_EQ(rec.epsilon, prev) << "round " << rec.round << " was not charged";
    }
    if (rec.aborted) {
      ++aborted;
      aborted_charged += charged;
      EXPECT_FALSE(rec.abort_reason.empty());
      EXPECT_EQ(rec.survivors, 0);
    }
    prev = rec.epsilon;
  }
  EXPECT_GT(aborted, 0);
  EXPECT_GT(aborted_charged, 0);  // an aborted round costs privacy under Poisson sampling
}

// (c) Every sampled device that sent its masked input in time is in the sum: in a committed
// round the only devices missing are those the simulation silenced (dice, deadline).
TEST(CoordinatorEngineTest, EveryTimelyMaskedInputIsSummed) {
  SimConfig c = PoissonConfig("fedlora_engine_sum");
  c.rounds = 3;
  c.poisson_rate = 1.0;  // everyone sampled: the reporting goal is the whole population
  c.min_survivors = 0.5;
  c.dropout_share = 0.05;
  c.speed_sigma = 0.5;
  c.deadline = 0.064 / 0.6;  // devices slower than 0.6 miss the training deadline
  auto r = RunSim(c);
  ASSERT_TRUE(r.ok()) << r.status();
  StoreView v = OpenStore(c);
  ASSERT_TRUE(v.store);
  int committed = 0, dropped = 0;
  for (const RoundRecord& rec : r->rounds) {
    if (rec.aborted) continue;
    ++committed;
    EXPECT_EQ(rec.survivors, rec.sampled - static_cast<int>(rec.dropped.size()))
        << rec.ToJson().dump();
    EXPECT_EQ(rec.survivors, v.rounds[rec.round].summed);
    for (const DropRecord& d : rec.dropped) {
      ++dropped;
      EXPECT_TRUE(d.reason == "dropout (simulated)" ||
                  d.reason.find("missed the round deadline") != std::string::npos)
          << d.phase << ": " << d.reason;
    }
  }
  EXPECT_GT(committed, 0);
  EXPECT_GT(dropped, 0);
}

// The coordinator's generator is seeded by run.seed and its clock is virtual: a run repeats to
// the bit, and another seed draws other coins.
TEST(CoordinatorEngineTest, SameSeedRepeatsOnTheEngine) {
  SimConfig c = PoissonConfig("fedlora_engine_repeat");
  c.rounds = 2;
  c.poisson_rate = 0.8;
  c.dropout_masked = 0.1;
  auto a = RunSim(c);
  ASSERT_TRUE(a.ok()) << a.status();
  fs::remove_all(c.out);
  auto b = RunSim(c);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->global_adapter, b->global_adapter);
  ASSERT_EQ(a->rounds.size(), b->rounds.size());
  for (size_t i = 0; i < a->rounds.size(); ++i) {
    EXPECT_EQ(a->rounds[i].ToJson()["dropped"], b->rounds[i].ToJson()["dropped"]);
    EXPECT_EQ(a->rounds[i].sampled, b->rounds[i].sampled);
  }
  EXPECT_EQ(a->summary.epsilon, b->summary.epsilon);
  c.seed = 2;
  fs::remove_all(c.out);
  auto d = RunSim(c);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_NE(a->global_adapter, d->global_adapter);
}

// privacy.epsilon_budget is the coordinator's: it refuses to plan a round that would exceed
// it, and the run stops there with the reason.
TEST(CoordinatorEngineTest, TheCoordinatorsBudgetStopsTheRun) {
  SimConfig c = PoissonConfig("fedlora_engine_budget");
  c.rounds = 3;
  c.poisson_rate = 1.0;  // every round commits and is charged
  auto full = RunSim(c);
  ASSERT_TRUE(full.ok()) << full.status();
  ASSERT_EQ(full->rounds.size(), 3u);
  c.epsilon_budget = (full->rounds[0].epsilon + full->rounds[1].epsilon) / 2;
  fs::remove_all(c.out);
  auto stopped = RunSim(c);
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->summary.rounds_completed, 1);
  EXPECT_THAT(stopped->summary.stop_reason, HasSubstr("stopped before round 2"));
  EXPECT_THAT(stopped->summary.stop_reason, HasSubstr("epsilon_budget"));
  EXPECT_LE(stopped->summary.epsilon, c.epsilon_budget);
  EXPECT_TRUE(stopped->summary.participants.has_value());
  StoreView v = OpenStore(c);
  ASSERT_TRUE(v.store);
  EXPECT_EQ(v.charged.size(), 1u);
}

// rounds.engine: auto runs the coordinator only where it can; coordinator is refused for a
// config it cannot run; simulator keeps the simulator's own sampling.
TEST(CoordinatorEngineTest, EngineChoiceIsStatedAndCheckedUpFront) {
  SimConfig c = SmallConfig("fedlora_engine_choice");
  EXPECT_EQ(c.engine, RoundEngine::kAuto);
  EXPECT_FALSE(UsesCoordinatorEngine(c));  // fixed-size cohorts
  EXPECT_EQ(EngineDescription(c), "simulator's own sampling");
  c.engine = RoundEngine::kCoordinator;
  absl::Status s = ValidateConfig(c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("rounds.engine"));
  EXPECT_THAT(s.message(), HasSubstr("rounds.sampling"));
  c.sampling = SamplingMode::kPoisson;
  EXPECT_TRUE(ValidateConfig(c).ok());
  EXPECT_TRUE(UsesCoordinatorEngine(c));
  c.engine = RoundEngine::kAuto;
  c.dp = DpMode::kCentral;
  EXPECT_FALSE(UsesCoordinatorEngine(c));
  c.dp = DpMode::kDistributed;
  c.lora_method = "ffa";
  EXPECT_FALSE(UsesCoordinatorEngine(c));
  c.lora_method = "lora";
  c.server_optimizer = ServerOptimizerKind::kFedAdam;
  EXPECT_FALSE(UsesCoordinatorEngine(c));
  c.server_optimizer = ServerOptimizerKind::kFedAvg;
  c.engine = RoundEngine::kSimulator;
  EXPECT_FALSE(UsesCoordinatorEngine(c));
  EXPECT_TRUE(UsesCoordinatorEngine(SimConfig()));  // the main job's defaults
}

}  // namespace
}  // namespace fedlora::sim
