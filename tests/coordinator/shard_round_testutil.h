// The fixture of the sharded-round tests over gRPC (shard_round_test.cc, in-process
// coordinator and fake devices) and with aggregator processes (aggregator_shard_test.cc): 9
// devices, max_shard_size 4, so three shards of 3 with a shard minimum of 2 and a round minimum
// of 5 (min_survivors 0.5), and the adapter one session over the same inputs decodes to.
#ifndef FEDLORA_TESTS_COORDINATOR_SHARD_ROUND_TESTUTIL_H_
#define FEDLORA_TESTS_COORDINATOR_SHARD_ROUND_TESTUTIL_H_

#include <set>
#include <string>
#include <vector>

#include "fake_device_testutil.h"
#include "fedlora/common/adapter_blob.h"
#include "fedlora/coordinator/federated_training.h"
#include "fedlora/coordinator/state_folder.h"
#include "fedlora/device/task_privacy.h"
#include "fedlora/privacy/params_wire.h"
#include "fedlora/secagg/round_driver.h"
#include "gtest/gtest.h"
#include "store_testutil.h"

namespace fedlora::coordinator::testing {

class ShardRoundTest : public GrpcRoundTest {
 protected:
  void StartSharded(testing::TestCoordinatorOptions t = {}) {
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

  // Round 1 finished committed with all 9 devices, charged once, and its adapter is bit for bit
  // the one a single session over the same inputs gives.
  void ExpectAllNineCommittedAsOneSession(const std::vector<FakeResult>& results) {
    ASSERT_TRUE(server_->rounds().WaitUntilFinished(absl::Seconds(30)));
    const RoundRecord round = Round(1);
    EXPECT_EQ(round.state, "committed") << round.abort_reason;
    EXPECT_EQ(round.summed, 9);
    EXPECT_EQ(Charges(), 1u);
    EXPECT_EQ(CommittedAdapter(), OneSessionAdapter(results));
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
    auto store = OpenStateStore(dir_);
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

}  // namespace fedlora::coordinator::testing

#endif  // FEDLORA_TESTS_COORDINATOR_SHARD_ROUND_TESTUTIL_H_
