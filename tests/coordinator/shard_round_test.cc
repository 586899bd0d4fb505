// Sharded rounds over gRPC (in-process coordinator, fake devices): 9 devices, max_shard_size 4,
// so three shards of 3 with a shard minimum of 2 and a round minimum of 5 (min_survivors 0.5).
// The committed adapter is the one-session decode of the same inputs; a shard below its minimum
// is dropped and the round commits from the others, or aborts charged; one ledger entry either
// way.
#include <set>

#include "fake_device_testutil.h"
#include "fedlora/common/adapter_blob.h"
#include "fedlora/coordinator/federated_training.h"
#include "fedlora/device/task_privacy.h"
#include "fedlora/privacy/params_wire.h"
#include "fedlora/secagg/round_driver.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

using testing::Behaviour;
using testing::FakeResult;
using testing::GrpcRoundTest;

class ShardRoundTest : public GrpcRoundTest {
 protected:
  void StartSharded() {
    testing::TestCoordinatorOptions t;
    t.max_shard_size = 4;
    Start(/*goal=*/9, /*devices=*/9, t);
  }

  // Every device of a shard in `silenced` but its index-0 member goes silent before its
  // masked input: the shard keeps 1 < 2 survivors.
  static std::vector<Behaviour> Silence(std::set<uint32_t> silenced) {
    Behaviour b;
    b.stop_before_for_task = [silenced](const v1::Task& task) {
      return silenced.count(task.shard()) && task.secagg_id() != 0 ? 2 : -1;
    };
    return std::vector<Behaviour>(9, b);
  }

  // Each device got its shard's session and passes the device's own task checks.
  static void ExpectShardedTasks(const std::vector<FakeResult>& results) {
    std::set<std::string> nonces;
    for (const FakeResult& r : results) {
      ASSERT_TRUE(r.task.has_secagg()) << r.status;
      EXPECT_EQ(r.task.secagg().num_devices(), 3u);
      EXPECT_EQ(r.task.shard_min_survivors(), 2u);
      EXPECT_EQ(r.task.secagg().min_sum_devices(), 2u);
      nonces.insert(r.task.secagg().round_nonce());
      auto params = privacy::ParamsFromProto(r.task.privacy());
      ASSERT_TRUE(params.ok());
      EXPECT_TRUE(device::CheckTask(r.task, *params, device::DevicePolicy()).ok());
    }
    EXPECT_EQ(nonces.size(), 3u);
  }

  // The adapter one session over the included devices' inputs decodes to, from the initial one.
  std::vector<float> OneSessionAdapter(const std::vector<FakeResult>& results) {
    std::vector<std::vector<uint32_t>> inputs;
    for (const FakeResult& r : results) {
      if (r.completed) inputs.push_back(r.input);
    }
    auto params = privacy::ParamsFromProto(results[0].task.privacy());
    EXPECT_TRUE(params.ok());
    ServerOptions o = testing::TestServerOptions(dir_, {});
    o.coordinator.recipe.expected_cohort = 9;
    o.coordinator.recipe.population = 9;
    o.coordinator.recipe.max_cohort = 9;
    o.coordinator.recipe.max_shard_size = 4;
    o.coordinator.recipe.dim = testing::kFakeDim;
    auto training = FederatedTraining::Create(o.coordinator.recipe, o.coordinator.optimizer,
                                              std::vector<float>(testing::kFakeDim, 0.01f));
    EXPECT_TRUE(training.ok()) << training.status();
    secagg::RoundConfig one;
    one.session = *(*training)->aggregator().SessionFor(
        *params, static_cast<uint32_t>(inputs.size()));
    one.session.graph = proto::SECAGG_GRAPH_COMPLETE;
    one.threads = 1;
    SeededRandom rng(uint64_t{3});
    auto sum = secagg::RunInProcessRound(one, inputs, secagg::DropoutPlan::None(), rng);
    EXPECT_TRUE(sum.ok() && !sum->aborted);
    RoundPlan plan;
    plan.privacy = *params;
    plan.mechanism = *(*training)->aggregator().Mechanism(*params);
    auto outcome = (*training)->CompleteDistributed(plan, sum->sum, static_cast<int>(inputs.size()));
    EXPECT_TRUE(outcome.ok() && outcome->released) << outcome.status();
    return (*training)->global();
  }

  std::vector<float> CommittedAdapter() {
    auto store = OpenSqliteStore(dir_);
    EXPECT_TRUE(store.ok());
    auto latest = (*store)->LatestAdapter();
    EXPECT_TRUE(latest.ok());
    auto bytes = (*store)->ReadBlob(latest->sha256);
    EXPECT_TRUE(bytes.ok());
    auto blob = DecodeAdapterBlob(*bytes);
    EXPECT_TRUE(blob.ok());
    return blob->values;
  }
};

TEST_F(ShardRoundTest, ThreeShardsCommitTheOneSessionAdapter) {
  StartSharded();
  auto results = RunAll(std::vector<Behaviour>(9));
  for (const FakeResult& r : results) {
    EXPECT_TRUE(r.status.ok()) << r.status;
    EXPECT_TRUE(r.completed) << r.detail;
  }
  ExpectShardedTasks(results);
  ASSERT_TRUE(server_->rounds().WaitUntilFinished(absl::Seconds(30)));
  const RoundRecord round = Round(1);
  EXPECT_EQ(round.state, "committed") << round.abort_reason;
  EXPECT_EQ(round.summed, 9);
  EXPECT_EQ(Charges(), 1u);
  EXPECT_EQ(CommittedAdapter(), OneSessionAdapter(results));
}

TEST_F(ShardRoundTest, AShardBelowItsMinimumIsDroppedAndTheRestCommits) {
  StartSharded();
  auto results = RunAll(Silence({0}));
  ASSERT_TRUE(server_->rounds().WaitUntilFinished(absl::Seconds(60)));
  int completed = 0;
  for (const FakeResult& r : results) {
    completed += r.completed;
    EXPECT_EQ(r.completed, r.task.shard() != 0) << "shard " << r.task.shard() << ": " << r.detail;
  }
  ExpectShardedTasks(results);
  EXPECT_EQ(completed, 6);
  const RoundRecord round = Round(1);
  EXPECT_EQ(round.state, "committed") << round.abort_reason;
  EXPECT_EQ(round.summed, 6);
  EXPECT_EQ(Charges(), 1u);
  EXPECT_GE(server_->metrics().Value("fedlora_device_drops_total", {"shard_dropped"}), 1);
  EXPECT_EQ(CommittedAdapter(), OneSessionAdapter(results));
}

TEST_F(ShardRoundTest, TooFewSurvivorsAcrossShardsAbortsCharged) {
  StartSharded();
  auto results = RunAll(Silence({0, 1}));  // shard 2 alone: 3 < the round's 5
  // Shard 2's devices wait for the finish, so the round is over; the next one is open.
  const absl::Time until = absl::Now() + absl::Seconds(30);
  while (server_->rounds().Current().round < 2 && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(server_->rounds().Current().round, 2u);
  for (const FakeResult& r : results) EXPECT_FALSE(r.completed) << r.task.shard();
  const RoundRecord round = Round(1);
  EXPECT_EQ(round.state, "aborted");
  EXPECT_TRUE(round.charged);
  EXPECT_FALSE(testing::HasDigit(round.abort_reason)) << round.abort_reason;
  EXPECT_EQ(Charges(), 1u);
  auto store = OpenSqliteStore(dir_);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->LatestAdapter()->version, 1u);
}

}  // namespace
}  // namespace fedlora::coordinator
