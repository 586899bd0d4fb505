// Sharded secure aggregation without transport (coordinator/shard_plan.h): balanced shards drawn
// from the generator, each shard's session and minimum, honest noise (each device calibrated
// for its shard's minimum, which the device checks), and the sum of the shard sums equal to the
// one-session sum bit for bit.
#include "fedlora/coordinator/shard_plan.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "fedlora/common/random.h"
#include "fedlora/device/task_privacy.h"
#include "fedlora/privacy/ddg_codec.h"
#include "fedlora/privacy/params_wire.h"
#include "fedlora/privacy/participation_accountant.h"
#include "fedlora/secagg/round_driver.h"
#include "fedlora/secagg/session_config.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

PrivacyRecipe Recipe(int goal, int max_cohort, int max_shard_size, size_t dim = 300) {
  PrivacyRecipe r;
  r.mode = privacy::DpMode::kDistributed;
  r.sampling = privacy::Sampling::kPoisson;
  r.dim = dim;
  r.population = 10 * max_cohort;
  r.expected_cohort = goal;
  r.max_cohort = max_cohort;
  r.noise_multiplier = 1;
  r.clip = 1;
  r.bits = 20;
  r.min_survivors = 0.8;
  r.delta = 1e-6;
  r.max_shard_size = max_shard_size;
  return r;
}

TEST(ShardPlanTest, SizesAreBalancedAndNeverBelowTheSmallestShard) {
  for (int s : {3, 4, 7, 12, 500}) {
    PrivacyRecipe r = Recipe(2, 3000, s);
    const int smallest = SmallestShard(r);
    EXPECT_EQ(smallest, (s + 1) / 2);
    for (uint32_t n = 1; n <= 3000; ++n) {
      const std::vector<uint32_t> sizes = ShardSizes(n, s);
      const uint32_t k = n <= static_cast<uint32_t>(s) ? 1 : (n + s - 1) / s;
      ASSERT_EQ(sizes.size(), k) << "n " << n << " S " << s;
      uint32_t total = 0;
      for (uint32_t z : sizes) {
        total += z;
        EXPECT_LE(z, static_cast<uint32_t>(s));
        if (k > 1) {
          EXPECT_GE(z, static_cast<uint32_t>(smallest)) << "n " << n << " S " << s;
        }
      }
      EXPECT_EQ(total, n);
      EXPECT_LE(sizes.front() - sizes.back(), 1u);
    }
  }
  EXPECT_EQ(ShardSizes(2000, 0), std::vector<uint32_t>{2000});
  EXPECT_EQ(ShardSizes(2000, 500), std::vector<uint32_t>(4, 500));
}

TEST(ShardPlanTest, ShardMinimumIsPublicAndUnshardedIsUnchanged) {
  // No sharding, or a max_cohort no sample can exceed: the round's minimum, as before.
  EXPECT_EQ(ShardMinClients(Recipe(2000, 2300, 0)), 1600);
  EXPECT_EQ(ShardMinClients(Recipe(2000, 2300, 2300)), 1600);
  // 4 shards of 500 expected; the smallest possible shard is 250: 0.8 x 250.
  EXPECT_EQ(ShardMinClients(Recipe(2000, 2300, 500)), 200);
  EXPECT_EQ(ShardMinClients(Recipe(4, 40, 3)), 2);  // never below 2
  PrivacyRecipe bad = Recipe(4, 40, 2);
  EXPECT_EQ(ValidateRecipe(bad).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ShardPlanTest, AssignmentIsADrawnPermutationWithOneSessionPerShard) {
  auto agg = RoundAggregator::Create(Recipe(40, 48, 12));
  ASSERT_TRUE(agg.ok()) << agg.status();
  auto params = agg->NextRoundParams(7);
  ASSERT_TRUE(params.ok());
  SeededRandom rng_a(uint64_t{1}), rng_b(uint64_t{2});
  auto a = PlanShards(*agg, *params, 40, proto::SECAGG_GRAPH_COMPLETE, rng_a);
  auto b = PlanShards(*agg, *params, 40, proto::SECAGG_GRAPH_COMPLETE, rng_b);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(a->shards.size(), 4u);
  EXPECT_EQ(a->round_min, 32u);
  EXPECT_EQ(a->shard_min, static_cast<uint32_t>(agg->shard_min_clients()));
  std::set<uint32_t> seen;
  std::set<std::string> nonces;
  bool arrival_blocks = true;
  for (size_t k = 0; k < a->shards.size(); ++k) {
    const Shard& s = a->shards[k];
    EXPECT_EQ(s.members.size(), 10u);
    EXPECT_TRUE(std::is_sorted(s.members.begin(), s.members.end()));
    EXPECT_EQ(s.session.num_devices(), 10u);
    EXPECT_EQ(s.session.min_sum_devices(), a->shard_min);
    EXPECT_EQ(s.session.bits(), 20u);
    nonces.insert(s.session.round_nonce());
    for (uint32_t m : s.members) EXPECT_TRUE(seen.insert(m).second) << "device twice: " << m;
    arrival_blocks = arrival_blocks && s.members.front() == 10 * k && s.members.back() == 10 * k + 9;
  }
  EXPECT_EQ(seen.size(), 40u);
  EXPECT_EQ(nonces.size(), 4u);
  EXPECT_FALSE(arrival_blocks) << "shards follow arrival order";
  EXPECT_NE(a->shards[0].members, b->shards[0].members) << "the assignment ignores the generator";
}

TEST(ShardPlanTest, OneShardIsTheUnshardedSessionAndDrawsNothingMore) {
  auto agg = RoundAggregator::Create(Recipe(10, 12, 0));
  ASSERT_TRUE(agg.ok());
  auto params = agg->NextRoundParams(3);
  ASSERT_TRUE(params.ok());
  SeededRandom planned(uint64_t{5}), direct(uint64_t{5});
  auto plan = PlanShards(*agg, *params, 11, proto::SECAGG_GRAPH_COMPLETE, planned);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->shards.size(), 1u);
  std::vector<uint32_t> identity(11);
  for (uint32_t i = 0; i < 11; ++i) identity[i] = i;
  EXPECT_EQ(plan->shards[0].members, identity);
  auto session = agg->SessionFor(*params, 11);
  ASSERT_TRUE(session.ok());
  session->graph = proto::SECAGG_GRAPH_COMPLETE;
  // What the configuring state always derived: 1 - min_survivors, capped by the majority.
  session->expected_dropout_rate = std::min({0.45, 1 - 6.0 / 11, std::max(0.05, 1 - 0.8)});
  auto config = secagg::MakeSessionConfig(*session, direct);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(plan->shards[0].session.SerializeAsString(), config->SerializeAsString());
  EXPECT_EQ(planned.NextU64(), direct.NextU64());
}

TEST(ShardPlanTest, EachDeviceCarriesTheFullNoiseForItsShardsMinimum) {
  auto sharded = RoundAggregator::Create(Recipe(40, 48, 12));
  auto whole = RoundAggregator::Create(Recipe(40, 48, 0));
  ASSERT_TRUE(sharded.ok() && whole.ok());
  auto ps = sharded->NextRoundParams(1);
  auto pw = whole->NextRoundParams(1);
  ASSERT_TRUE(ps.ok() && pw.ok());
  auto ds = privacy::ChooseDdgParams(ps->value);
  auto dw = privacy::ChooseDdgParams(pw->value);
  ASSERT_TRUE(ds.ok() && dw.ok());
  const double target = 1.0 * 1.0;  // (z C)^2
  EXPECT_NEAR(ds->local_stddev * ds->local_stddev * sharded->shard_min_clients(), target, 1e-9);
  EXPECT_NEAR(dw->local_stddev * dw->local_stddev * whole->min_clients(), target, 1e-9);
  EXPECT_LT(sharded->shard_min_clients(), whole->min_clients());
  // The charge the store keeps names the shard's minimum, so the epsilon against the
  // coordinator recomputed from it is the one each device computes for itself.
  auto m = sharded->Mechanism(*ps);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->ddg[0].n_min, sharded->shard_min_clients());
  SeededRandom rng(uint64_t{9});
  auto plan = PlanShards(*sharded, *ps, 40, proto::SECAGG_GRAPH_COMPLETE, rng);
  ASSERT_TRUE(plan.ok());
  v1::Task task;
  *task.mutable_privacy() = privacy::ParamsToProto(*ps);
  *task.mutable_secagg() = plan->shards[2].session;
  task.set_shard(2);
  task.set_shard_min_survivors(plan->shard_min);
  EXPECT_TRUE(device::CheckTask(task, *ps, device::DevicePolicy()).ok());
  const auto orders = privacy::DefaultRdpOrders();
  auto device_view = device::UnamplifiedRoundRdp(task, *ps, orders);
  auto store_view = privacy::RdpAgainstCoordinator(*m, orders);
  ASSERT_TRUE(device_view.ok() && store_view.ok());
  EXPECT_EQ(*device_view, *store_view);
}

TEST(ShardPlanTest, DeviceRefusesATaskCalibratedForTheWholeRound) {
  auto sharded = RoundAggregator::Create(Recipe(40, 48, 12));
  auto whole = RoundAggregator::Create(Recipe(40, 48, 0));
  ASSERT_TRUE(sharded.ok() && whole.ok());
  auto ps = sharded->NextRoundParams(1);
  auto pw = whole->NextRoundParams(1);  // noise for 32 survivors: too little for one shard
  ASSERT_TRUE(ps.ok() && pw.ok());
  SeededRandom rng(uint64_t{4});
  auto plan = PlanShards(*sharded, *ps, 40, proto::SECAGG_GRAPH_COMPLETE, rng);
  ASSERT_TRUE(plan.ok());
  v1::Task task;
  *task.mutable_privacy() = privacy::ParamsToProto(*pw);
  *task.mutable_secagg() = plan->shards[1].session;
  task.set_shard(1);
  task.set_shard_min_survivors(plan->shard_min);
  absl::Status s = device::CheckTask(task, *pw, device::DevicePolicy());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("shard 1 must keep only"), std::string::npos) << s;
  // A session that claims the round's minimum for a shard of 10 devices (it would pass the
  // session check alone, and never be unmasked): refused as inconsistent.
  task.mutable_secagg()->set_min_sum_devices(32);
  s = device::CheckTask(task, *pw, device::DevicePolicy());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  task.set_shard_min_survivors(32);
  s = device::CheckTask(task, *pw, device::DevicePolicy());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("exceeds its 10 devices"), std::string::npos) << s;
  // The honest task of the same shard passes.
  *task.mutable_privacy() = privacy::ParamsToProto(*ps);
  *task.mutable_secagg() = plan->shards[1].session;
  task.set_shard_min_survivors(plan->shard_min);
  EXPECT_TRUE(device::CheckTask(task, *ps, device::DevicePolicy()).ok());
}

TEST(ShardPlanTest, SumOfShardSumsEqualsTheOneSessionSumBitForBit) {
  // The same quantised, noised inputs (PrepareUpdate with the sharded round's parameters)
  // through four 10-device sessions and through one 40-device session.
  auto agg = RoundAggregator::Create(Recipe(40, 48, 12));
  ASSERT_TRUE(agg.ok());
  auto params = agg->NextRoundParams(11);
  ASSERT_TRUE(params.ok());
  SeededRandom rng(uint64_t{21});
  std::vector<std::vector<uint32_t>> inputs;
  for (int i = 0; i < 40; ++i) {
    std::vector<float> delta(params->dim);
    for (float& v : delta) v = static_cast<float>(0.05 * rng.StandardNormal());
    privacy::PrepareOptions opt;
    opt.allow_seeded_noise = true;
    auto up = privacy::PrepareUpdate(delta.data(), delta.size(), *params, rng, opt);
    ASSERT_TRUE(up.ok()) << up.status();
    inputs.push_back(up->secagg_input);
  }
  auto plan = PlanShards(*agg, *params, 40, proto::SECAGG_GRAPH_COMPLETE, rng);
  ASSERT_TRUE(plan.ok());
  std::vector<std::vector<uint32_t>> shard_sums;
  for (const Shard& shard : plan->shards) {
    secagg::RoundConfig cfg;
    cfg.session = *agg->SessionFor(*params, static_cast<uint32_t>(shard.members.size()));
    cfg.threads = 1;
    std::vector<std::vector<uint32_t>> mine;
    for (uint32_t m : shard.members) mine.push_back(inputs[m]);
    auto result = secagg::RunInProcessRound(cfg, mine, secagg::DropoutPlan::None(), rng);
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_FALSE(result->aborted) << result->abort_status;
    shard_sums.push_back(result->sum);
  }
  auto sharded = AddShardSums(shard_sums, 20);
  ASSERT_TRUE(sharded.ok());
  secagg::RoundConfig one;
  one.session = *agg->SessionFor(*params, 40);
  one.threads = 1;
  auto whole = secagg::RunInProcessRound(one, inputs, secagg::DropoutPlan::None(), rng);
  ASSERT_TRUE(whole.ok()) << whole.status();
  ASSERT_FALSE(whole->aborted);
  EXPECT_EQ(*sharded, whole->sum);
  std::vector<uint32_t> all(40);
  for (uint32_t i = 0; i < 40; ++i) all[i] = i;
  EXPECT_EQ(*sharded, secagg::PlainSum(inputs, all, 20));
  // And so the decoded mean is the same.
  auto a = agg->FinishDistributed(*params, *sharded, 40);
  auto b = agg->FinishDistributed(*params, whole->sum, 40);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(a->rejected.empty()) << a->rejected;
  EXPECT_EQ(a->mean_delta, b->mean_delta);
  EXPECT_EQ(AddShardSums({{1, 2}, {3}}, 20).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AddShardSums({{1u << 20}}, 20).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fedlora::coordinator
