// Pinned privacy parameters and the run's two epsilons, read back from a real store.
#include "fedlora/coordinator/pinned_params.h"

#include <stdlib.h>

#include <filesystem>

#include "../coordinator/src/mechanism_json.h"
#include "fedlora/coordinator/accountant.h"
#include "fedlora/coordinator/run_epsilons.h"
#include "fedlora/privacy/ddg_accounting.h"
#include "fedlora/privacy/participation_accountant.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

class PinnedParamsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/pinned_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    auto s = OpenSqliteStore(dir_ + "/state");
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    o_.recipe.mode = privacy::DpMode::kDistributed;
    o_.recipe.sampling = privacy::Sampling::kPoisson;
    o_.recipe.population = 100;
    o_.recipe.expected_cohort = 10;
    o_.recipe.poisson_rate = 0.1;
    o_.recipe.noise_multiplier = 1;
    o_.recipe.clip = 0.5;
    o_.recipe.delta = 1e-5;
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string dir_;
  std::unique_ptr<Store> store_;
  CoordinatorOptions o_;
};

TEST_F(PinnedParamsTest, ARunWithTheSameParametersPasses) {
  ASSERT_TRUE(PinPrivacyParams(*store_, o_).ok());
  bool pinned_now = true;
  EXPECT_TRUE(CheckPinnedPrivacyParams(*store_, o_, &pinned_now).ok());
  EXPECT_FALSE(pinned_now);
  // What is not about privacy may change between runs.
  CoordinatorOptions other = o_;
  other.max_rounds = 50;
  other.phase_deadline = absl::Seconds(7);
  EXPECT_TRUE(CheckPinnedPrivacyParams(*store_, other).ok());
  EXPECT_EQ(PinPrivacyParams(*store_, o_).code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(PinnedParamsTest, ShardingIsPinnedWhenSetAndAbsentOtherwise) {
  // Folders pinned before sharding existed (no key) still match a run without it.
  EXPECT_FALSE(PinnedPrivacyParams(o_).contains("max_shard_size"));
  CoordinatorOptions sharded = o_;
  sharded.recipe.max_shard_size = 4;
  ASSERT_TRUE(PinPrivacyParams(*store_, sharded).ok());
  EXPECT_TRUE(CheckPinnedPrivacyParams(*store_, sharded).ok());
  // Changing or removing it changes every device's noise: refused, naming the key.
  absl::Status s = CheckPinnedPrivacyParams(*store_, o_);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("max_shard_size removed"));
  sharded.recipe.max_shard_size = 8;
  EXPECT_THAT(CheckPinnedPrivacyParams(*store_, sharded).message(),
              HasSubstr("max_shard_size 4 -> 8"));
}

TEST_F(PinnedParamsTest, ALargerDeltaOrLessNoiseIsRefusedNamingEachKey) {
  ASSERT_TRUE(PinPrivacyParams(*store_, o_).ok());
  CoordinatorOptions edited = o_;
  edited.recipe.delta = 1e-3;
  edited.recipe.noise_multiplier = 0.5;
  absl::Status s = CheckPinnedPrivacyParams(*store_, edited);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr("delta 1e-05 -> 0.001"), HasSubstr("noise_multiplier 1.0 -> 0.5"),
                    HasSubstr("new population")));
  CoordinatorOptions rate = o_;
  rate.recipe.poisson_rate = 0.2;
  EXPECT_THAT(CheckPinnedPrivacyParams(*store_, rate).message(), HasSubstr("sampling_rate"));
  CoordinatorOptions budget = o_;
  budget.recipe.epsilon_budget = 50;
  EXPECT_THAT(CheckPinnedPrivacyParams(*store_, budget).message(), HasSubstr("epsilon_budget"));
}

TEST_F(PinnedParamsTest, AFolderFromBeforePinningIsPinnedOnItsFirstRun) {
  bool pinned_now = false;
  ASSERT_TRUE(CheckPinnedPrivacyParams(*store_, o_, &pinned_now).ok());
  EXPECT_TRUE(pinned_now);
  auto delta = PinnedDelta(*store_);
  ASSERT_TRUE(delta.ok());
  EXPECT_EQ(*delta, 1e-5);
  CoordinatorOptions edited = o_;
  edited.recipe.delta = 2e-5;
  EXPECT_EQ(CheckPinnedPrivacyParams(*store_, edited).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(PinnedParamsTest, DamagedPinIsDataLoss) {
  ASSERT_TRUE(store_->PutMeta(kPinnedPrivacyKey, "{not json").ok());
  EXPECT_EQ(CheckPinnedPrivacyParams(*store_, o_).code(), absl::StatusCode::kDataLoss);
}

privacy::RoundMechanism Round(double q) {
  privacy::DdgConfig c;
  c.dim = 2048;
  c.expected_clients = 10;
  c.min_clients = 8;
  c.l2_clip = 0.5;
  c.noise_multiplier = 1;
  c.bits = 20;
  privacy::RoundMechanism m;
  m.q = q;
  m.ddg = {privacy::DdgValueMechanism(*privacy::ChooseDdgParams(c))};
  return m;
}

TEST_F(PinnedParamsTest, RunEpsilonsSplitObserversFromTheCoordinator) {
  // Three charged rounds at q = 0.1: "a" is in all three, "b" in one, "c" in none.
  const std::vector<std::vector<std::string>> who = {{"a", "b"}, {"a"}, {"a"}};
  PrivacyAccountant reference(1e-5);
  for (uint64_t r = 1; r <= 3; ++r) {
    ASSERT_TRUE(store_->BeginRound(r, 2).ok());
    PrivacyCharge c;
    c.round = r;
    c.mechanism = MechanismToJson(Round(0.1));
    ASSERT_TRUE(reference.Charge(Round(0.1)).ok());
    c.epsilon_after = reference.epsilon();
    ASSERT_TRUE(store_->ChargeRound(c, who[r - 1]).ok());
  }
  auto eps = ComputeRunEpsilons(*store_, 1e-5);
  ASSERT_TRUE(eps.ok()) << eps.status();
  EXPECT_EQ(eps->rounds_charged, 3);
  EXPECT_DOUBLE_EQ(eps->observers, reference.epsilon());
  privacy::ParticipationAccountant a(1e-5);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a.Charge({"a"}, Round(0.1)).ok());
  EXPECT_DOUBLE_EQ(eps->coordinator, a.Epsilon("a"));
  EXPECT_GT(eps->coordinator, eps->observers);  // no amplification against the coordinator
  EXPECT_EQ(eps->max_rounds_per_device, 3);
  const nlohmann::json j = eps->ToJson();
  EXPECT_DOUBLE_EQ(j["epsilon_coordinator"]["epsilon"].get<double>(), eps->coordinator);
  EXPECT_THAT(j["epsilon_coordinator"]["holds_against"].get<std::string>(),
              HasSubstr("coordinator"));
  EXPECT_EQ(ComputeRunEpsilons(*store_, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fedlora::coordinator
