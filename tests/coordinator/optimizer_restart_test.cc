// FedAdam and FedYogi across a coordinator restart: the moments are stored with each adapter
// version (FederatedTraining::EncodeState in Store::CommitRound's transaction) and restored by
// FederatedTraining::Restore, so a restarted run takes exactly the step an uninterrupted one
// takes; a state without its moments, or damaged, is DATA_LOSS, never a silent zero.
#include <cmath>
#include <cstring>
#include <filesystem>

#include "fedlora/common/adapter_blob.h"
#include "fedlora/common/random.h"
#include "fedlora/coordinator/federated_training.h"
#include "fedlora/coordinator/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

using ::testing::HasSubstr;

constexpr size_t kDim = 64;

PrivacyRecipe NoDpRecipe() {
  PrivacyRecipe r;
  r.mode = privacy::DpMode::kNone;
  r.sampling = privacy::Sampling::kFixedSize;
  r.dim = kDim;
  r.population = 10;
  r.expected_cohort = 2;
  r.clip = 1.0;
  return r;
}

std::unique_ptr<FederatedTraining> Make(ServerOptimizerKind kind) {
  ServerOptimizerConfig opt;
  opt.kind = kind;
  opt.lr = 0.1;
  auto t = FederatedTraining::Create(NoDpRecipe(), opt, std::vector<float>(kDim, 0.0f));
  EXPECT_TRUE(t.ok()) << t.status();
  return std::move(*t);
}

// Round r's aggregated update (the same for every run).
void Step(FederatedTraining& t, int r) {
  privacy::PreparedUpdate u;
  u.clipped_delta.resize(kDim);
  for (size_t i = 0; i < kDim; ++i) u.clipped_delta[i] = 0.05f * std::sin(0.7 * i + 1.3 * r);
  auto plan = t.PlanRound(r);
  ASSERT_TRUE(plan.ok()) << plan.status();
  SeededRandom rng(r);
  auto out = t.CompleteCentral(*plan, {&u}, rng);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_TRUE(out->released);
}

// Commits `t`'s global and state as round r, as the coordinator's commit does.
void Commit(Store& store, const FederatedTraining& t, uint64_t r) {
  ASSERT_TRUE(store.BeginRound(r, 1).ok());
  PrivacyCharge c;
  c.round = r;
  c.mechanism = "{}";
  ASSERT_TRUE(store.ChargeRound(c, {"device-1"}).ok());
  AdapterBlob blob;
  blob.lora = {{"r", 8}};
  blob.values = t.global();
  auto v = store.CommitRound(r, 1, EncodeAdapterBlob(blob), t.EncodeState());
  ASSERT_TRUE(v.ok()) << v.status();
}

// A fresh training restored from the store's latest version, as RoundManager does at start.
std::unique_ptr<FederatedTraining> Restart(Store& store, ServerOptimizerKind kind) {
  auto t = Make(kind);
  auto latest = store.LatestAdapter();
  EXPECT_TRUE(latest.ok());
  auto blob = DecodeAdapterBlob(*store.ReadBlob(latest->sha256));
  EXPECT_TRUE(blob.ok());
  auto state = store.OptimizerState();
  EXPECT_TRUE(state.ok());
  absl::Status s = t->Restore(blob->values, *state, latest->round == 0, {});
  EXPECT_TRUE(s.ok()) << s;
  return t;
}

class OptimizerRestartTest : public ::testing::TestWithParam<ServerOptimizerKind> {};

TEST_P(OptimizerRestartTest, ARestartedRunTakesTheSameStepAsOneThatNeverStopped) {
  const std::string dir =
      ::testing::TempDir() + "/optimizer_restart_" + std::to_string(static_cast<int>(GetParam()));
  std::filesystem::remove_all(dir);
  auto store = OpenSqliteStore(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  AdapterBlob initial;
  initial.lora = {{"r", 8}};
  initial.values.assign(kDim, 0.0f);
  ASSERT_TRUE((*store)->PutInitialAdapter(EncodeAdapterBlob(initial)).ok());

  auto never = Make(GetParam());
  const int k = 3;
  for (int r = 1; r <= k; ++r) {
    Step(*never, r);
    Commit(**store, *never, r);
  }
  auto restarted = Restart(**store, GetParam());
  ASSERT_EQ(restarted->global(), never->global());
  Step(*never, k + 1);
  Step(*restarted, k + 1);
  EXPECT_EQ(restarted->global(), never->global());  // bit for bit

  // The moments are what makes it so: the same global with zero moments steps elsewhere.
  auto zeroed = Make(GetParam());
  auto latest = (*store)->LatestAdapter();
  auto blob = DecodeAdapterBlob(*(*store)->ReadBlob(latest->sha256));
  ASSERT_TRUE(zeroed->Restore(blob->values, "", /*initial=*/true, {}).ok());
  Step(*zeroed, k + 1);
  EXPECT_NE(zeroed->global(), never->global());
  std::filesystem::remove_all(dir);
}

TEST_P(OptimizerRestartTest, MissingOrDamagedMomentsAreDataLossNeverZero) {
  auto run = Make(GetParam());
  Step(*run, 1);
  const std::string state = run->EncodeState();
  const size_t nl = state.find('\n');
  ASSERT_NE(nl, std::string::npos);
  ASSERT_EQ(state.size() - nl - 1, 16 * kDim);  // m and v, float64
  const std::vector<float> global = run->global();

  auto restore = [&](const std::string& s, bool initial = false) {
    return Make(GetParam())->Restore(global, s, initial, {});
  };
  EXPECT_TRUE(restore(state).ok());
  // Only the clip (a folder that never stored moments) after a committed round.
  absl::Status legacy = restore("{\"clip\":1.0}");
  EXPECT_EQ(legacy.code(), absl::StatusCode::kDataLoss) << legacy;
  EXPECT_THAT(legacy.message(), HasSubstr("moments"));
  EXPECT_EQ(restore("").code(), absl::StatusCode::kDataLoss);
  // Truncated, or a header that is not JSON.
  EXPECT_EQ(restore(state.substr(0, state.size() - 8)).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(restore("x" + state).code(), absl::StatusCode::kDataLoss);
  // A negative second moment is no moment.
  std::string bad = state;
  const double minus = -1.0;
  std::memcpy(&bad[nl + 1 + 8 * kDim], &minus, 8);
  EXPECT_EQ(restore(bad).code(), absl::StatusCode::kDataLoss);
  // Written by another optimizer.
  auto fedavg = Make(ServerOptimizerKind::kFedAvg);
  Step(*fedavg, 1);
  EXPECT_EQ(restore(fedavg->EncodeState()).code(), absl::StatusCode::kFailedPrecondition);
  // FedAvg keeps nothing: its state is the clip alone.
  EXPECT_TRUE(Make(ServerOptimizerKind::kFedAvg)->Restore(global, "", false, {}).ok());
}

INSTANTIATE_TEST_SUITE_P(AdaptiveOptimizers, OptimizerRestartTest,
                         ::testing::Values(ServerOptimizerKind::kFedAdam,
                                           ServerOptimizerKind::kFedYogi),
                         [](const auto& info) { return ServerOptimizerName(info.param); });

}  // namespace
}  // namespace fedlora::coordinator
