// The coordinator's transport-free round logic: one privacy path for simulator and server,
// and an epsilon that is never lower than the truth.
#include "fedlora/coordinator/federated_training.h"

#include <cmath>
#include <functional>

#include "fedlora/privacy/clipping.h"
#include "fedlora/privacy/ddg_codec.h"
#include "fedlora/privacy/rdp.h"
#include "fedlora/secagg/round_driver.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

using privacy::DpMode;
using ::testing::HasSubstr;

PrivacyRecipe Recipe(DpMode mode, privacy::Sampling sampling, bool adaptive = false) {
  PrivacyRecipe r;
  r.mode = mode;
  r.dim = 64;
  r.population = 200;
  r.expected_cohort = 20;
  r.sampling = sampling;
  r.noise_multiplier = 1.0;
  r.clip = 1.0;
  r.adaptive_clip = adaptive;
  r.bits = 20;
  r.min_survivors = 0.8;  // min_clients 16
  r.delta = 1e-5;
  return r;
}

std::unique_ptr<FederatedTraining> Make(const PrivacyRecipe& r) {
  auto t = FederatedTraining::Create(r, {}, std::vector<float>(r.dim, 0.0f));
  EXPECT_TRUE(t.ok()) << t.status();
  return std::move(*t);
}

// Devices run PrepareUpdate; secure aggregation runs over the in-process transport with the
// session the coordinator asks for; `silent` devices drop after sending their masked input
// would have been due (masked-input phase).
struct RoundRun {
  secagg::RoundResult secagg;
  RoundOutcome outcome;
};
RoundRun RunDistributed(FederatedTraining& t, int devices, const std::vector<uint32_t>& silent,
                        float value,
                        const std::function<void(std::vector<uint32_t>&)>& tamper_last = {}) {
  auto plan = t.PlanRound(123);
  EXPECT_TRUE(plan.ok()) << plan.status();
  std::vector<std::vector<uint32_t>> inputs;
  privacy::PrepareOptions sim;
  sim.allow_seeded_noise = true;
  for (int d = 0; d < devices; ++d) {
    SeededRandom rng(1000 + d);
    std::vector<float> delta(t.aggregator().recipe().dim, value);
    auto up = privacy::PrepareUpdate(delta.data(), delta.size(), plan->privacy, rng, sim);
    EXPECT_TRUE(up.ok()) << up.status();
    inputs.push_back(up->secagg_input);
  }
  if (tamper_last) tamper_last(inputs.back());  // a malicious device: any vector mod 2^b
  secagg::RoundConfig rc;
  auto session = t.aggregator().SessionFor(plan->privacy, devices);
  EXPECT_TRUE(session.ok()) << session.status();
  rc.session = *session;
  rc.session.graph = proto::SECAGG_GRAPH_COMPLETE;
  secagg::DropoutPlan drop;
  drop.silent_in_phase[static_cast<int>(secagg::Phase::kMaskedInput)] = silent;
  SeededRandom rng(7);
  auto round = secagg::RunInProcessRound(rc, inputs, drop, rng);
  EXPECT_TRUE(round.ok()) << round.status();
  RoundRun run;
  run.secagg = *round;
  auto out = round->aborted
                 ? t.Abort(*plan, std::string(round->abort_status.message()))
                 : t.CompleteDistributed(*plan, round->sum,
                                         static_cast<int>(round->included_devices.size()));
  EXPECT_TRUE(out.ok()) << out.status();
  run.outcome = *out;
  return run;
}

TEST(FederatedTrainingTest, DistributedRoundReleasesTheNoisyMeanAndCharges) {
  auto t = Make(Recipe(DpMode::kDistributed, privacy::Sampling::kFixedSize));
  RoundRun run = RunDistributed(*t, 20, {}, 0.05f);  // norm 0.4 < clip 1
  ASSERT_TRUE(run.outcome.released) << run.outcome.abort_reason;
  EXPECT_EQ(run.outcome.summed, 20);
  EXPECT_TRUE(run.outcome.charged);
  EXPECT_GT(t->epsilon(), 0);
  EXPECT_EQ(t->accountant().rounds_charged(), 1);
  // FedAvg with lr 1: global = mean delta + noise of stddev z C / 20 = 0.05 per coordinate.
  double mean = 0;
  for (float g : t->global()) mean += g;
  mean /= t->global().size();
  EXPECT_NEAR(mean, 0.05, 0.03);
}

// Issue fix 1: fewer survivors than the noise is calibrated for -> no release, no charge.
TEST(FederatedTrainingTest, TooFewSurvivorsAbortBeforeUnmaskingAndChargeNothing) {
  auto t = Make(Recipe(DpMode::kDistributed, privacy::Sampling::kFixedSize));
  // 20 devices report, 5 go silent in the masked-input phase: 15 < min_clients 16.
  RoundRun run = RunDistributed(*t, 20, {0, 1, 2, 3, 4}, 0.05f);
  EXPECT_TRUE(run.secagg.aborted);
  EXPECT_TRUE(run.secagg.sum.empty());  // the server never unmasked anything
  EXPECT_THAT(std::string(run.secagg.abort_status.message()),
              HasSubstr("15 survivors < min_clients 16: the noise would be too small"));
  EXPECT_FALSE(run.outcome.released);
  EXPECT_FALSE(run.outcome.charged);
  EXPECT_EQ(t->epsilon(), 0.0);
  EXPECT_EQ(t->accountant().rounds_charged(), 0);
  for (float g : t->global()) ASSERT_EQ(g, 0.0f);
  // Even if a transport handed over such a sum, the coordinator refuses to release it.
  auto plan = t->PlanRound(1);
  ASSERT_TRUE(plan.ok());
  auto direct = t->CompleteDistributed(*plan, std::vector<uint32_t>(64, 0), 15);
  ASSERT_TRUE(direct.ok());
  EXPECT_FALSE(direct->released);
  EXPECT_EQ(t->accountant().rounds_charged(), 0);
}

// Issue fix 2: with adaptive clipping the count is noised on the devices, and the accountant
// charges the composition of the value and the count.
TEST(FederatedTrainingTest, AdaptiveCountIsNoisedOnDevicesAndAccounted) {
  auto recipe = Recipe(DpMode::kDistributed, privacy::Sampling::kFixedSize, /*adaptive=*/true);
  std::vector<double> seen_fraction;
  for (int trial = 0; trial < 6; ++trial) {
    auto t = Make(recipe);
    auto plan = t->PlanRound(5);
    ASSERT_TRUE(plan.ok());
    ASSERT_TRUE(plan->privacy.send_clip_bit);
    ASSERT_TRUE(plan->privacy.count.has_value());
    ASSERT_EQ(plan->mechanism->ddg.size(), 2u);  // value and count
    std::vector<std::vector<uint32_t>> inputs;
    privacy::PrepareOptions sim;
    sim.allow_seeded_noise = true;
    for (int d = 0; d < 20; ++d) {
      SeededRandom rng(100 * trial + d);
      std::vector<float> delta(64, d < 10 ? 0.01f : 1.0f);  // half clipped
      auto up = privacy::PrepareUpdate(delta.data(), 64, plan->privacy, rng, sim);
      ASSERT_TRUE(up.ok());
      inputs.push_back(up->secagg_input);
    }
    std::vector<uint32_t> all(20);
    for (uint32_t i = 0; i < 20; ++i) all[i] = i;
    auto out = t->CompleteDistributed(*plan, secagg::PlainSum(inputs, all, 20), 20);
    ASSERT_TRUE(out.ok()) << out.status();
    ASSERT_TRUE(out->noisy_unclipped_fraction.has_value());
    seen_fraction.push_back(*out->noisy_unclipped_fraction);
    // Epsilon equals the composition of both parts, and is more than the value alone.
    auto both = privacy::ComputeRoundRdp(*plan->mechanism, privacy::DefaultRdpOrders());
    ASSERT_TRUE(both.ok());
    auto eps = privacy::RdpToEpsilon(privacy::DefaultRdpOrders(), *both, recipe.delta);
    EXPECT_NEAR(t->epsilon(), eps->epsilon, 1e-9);
    auto value_only = *plan->mechanism;
    value_only.ddg.pop_back();
    auto v = privacy::ComputeRoundRdp(value_only, privacy::DefaultRdpOrders());
    auto eps_v = privacy::RdpToEpsilon(privacy::DefaultRdpOrders(), *v, recipe.delta);
    EXPECT_GT(t->epsilon(), eps_v->epsilon);
  }
  // The true unclipped fraction is 0.5; what the server sees varies with the devices' noise.
  double mean = 0;
  for (double f : seen_fraction) mean += f;
  mean /= seen_fraction.size();
  EXPECT_NEAR(mean, 0.5, 0.1);
  std::sort(seen_fraction.begin(), seen_fraction.end());
  EXPECT_GT(seen_fraction.back() - seen_fraction.front(), 0.01);
}

// Issue fix 3: a fixed-size cohort is charged for sampling without replacement under
// replace-one neighbours (more than Poisson at the same rate), Poisson stays Poisson.
TEST(FederatedTrainingTest, FixedCohortsAreChargedWithoutReplacement) {
  for (DpMode mode : {DpMode::kCentral, DpMode::kDistributed}) {
    auto fixed = Make(Recipe(mode, privacy::Sampling::kFixedSize));
    auto poisson = Make(Recipe(mode, privacy::Sampling::kPoisson));
    auto pf = fixed->PlanRound(1);
    auto pp = poisson->PlanRound(1);
    ASSERT_TRUE(pf.ok() && pp.ok());
    EXPECT_EQ(pf->mechanism->sampling, privacy::Sampling::kFixedSize);
    EXPECT_EQ(pp->mechanism->sampling, privacy::Sampling::kPoisson);
    EXPECT_DOUBLE_EQ(pf->mechanism->q, 0.1);
    EXPECT_GT(*pf->epsilon_if_released, *pp->epsilon_if_released);
    EXPECT_THAT(privacy::DescribeAccounting(*pf->mechanism), HasSubstr("replace one"));
    EXPECT_THAT(privacy::DescribeAccounting(*pp->mechanism), HasSubstr("add/remove"));
  }
  // Central Gaussian under Poisson is exactly the Poisson-subsampled Gaussian with total z.
  auto poisson = Make(Recipe(DpMode::kCentral, privacy::Sampling::kPoisson));
  auto plan = poisson->PlanRound(1);
  auto ref = privacy::ComputeEpsilon({0.1, 1.0, 1, 1e-5});
  ASSERT_TRUE(ref.ok());
  EXPECT_NEAR(*plan->epsilon_if_released, ref->epsilon, 1e-9);
}

// Under Poisson sampling the mean divides by the expected cohort (public), never by the number
// of devices that happened to report.
TEST(FederatedTrainingTest, PoissonMeanDividesByTheExpectedCohort) {
  for (DpMode mode : {DpMode::kNone, DpMode::kCentral}) {
    auto recipe = Recipe(mode, privacy::Sampling::kPoisson);
    recipe.noise_multiplier = mode == DpMode::kNone ? 0 : 1e-6;
    auto t = Make(recipe);
    auto plan = t->PlanRound(1);
    ASSERT_TRUE(plan.ok());
    std::vector<privacy::PreparedUpdate> ups(5);
    std::vector<const privacy::PreparedUpdate*> ptrs;
    SecureRandom rng;
    for (auto& u : ups) {
      std::vector<float> d(64, 0.1f);  // norm 0.8 < clip
      u = *privacy::PrepareUpdate(d.data(), 64, plan->privacy, rng);
      ptrs.push_back(&u);
    }
    auto out = t->CompleteCentral(*plan, ptrs, rng);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_NEAR(t->global()[0], 5 * 0.1 / 20, 1e-4);  // not 0.1
  }
  // Fixed-size cohorts divide by the devices summed.
  auto t = Make(Recipe(DpMode::kNone, privacy::Sampling::kFixedSize));
  auto plan = t->PlanRound(1);
  std::vector<privacy::PreparedUpdate> ups(5);
  std::vector<const privacy::PreparedUpdate*> ptrs;
  SecureRandom rng;
  for (auto& u : ups) {
    std::vector<float> d(64, 0.1f);
    u = *privacy::PrepareUpdate(d.data(), 64, plan->privacy, rng);
    ptrs.push_back(&u);
  }
  ASSERT_TRUE(t->CompleteCentral(*plan, ptrs, rng).ok());
  EXPECT_NEAR(t->global()[0], 0.1, 1e-6);
}

// A device's masked input is any vector mod 2^b. One that adds a large vector to its input
// makes the decoded sum exceed the bound of the summed devices' clip plus the noise tail: the
// round is aborted, nothing applied, and charged (also for fixed-size cohorts: the decision
// was taken on the noisy sum). Honest rounds with the same settings pass, and stay below the
// bound with room to spare in neither direction (the bound is not vacuous).
TEST(FederatedTrainingTest, AggregateAboveTheNormBoundAbortsCharged) {
  for (privacy::Sampling sampling : {privacy::Sampling::kFixedSize, privacy::Sampling::kPoisson}) {
    auto t = Make(Recipe(DpMode::kDistributed, sampling));
    RoundRun bad = RunDistributed(*t, 20, {}, 0.05f, [](std::vector<uint32_t>& v) {
      SeededRandom signs(99);
      // +-(3/8) 2^20 per entry (random signs), mod 2^20.
      for (uint32_t& x : v)
        x = (x + ((signs.NextU64() & 1) ? (3u << 17) : (5u << 17))) % (1u << 20);
    });
    ASSERT_FALSE(bad.secagg.aborted);  // secure aggregation cannot tell
    EXPECT_FALSE(bad.outcome.released);
    EXPECT_TRUE(bad.outcome.charged);
    EXPECT_THAT(bad.outcome.abort_reason, HasSubstr("L2 norm exceeds"));
    EXPECT_THAT(bad.outcome.abort_reason, HasSubstr("1e-09"));
    EXPECT_EQ(t->accountant().rounds_charged(), 1);
    EXPECT_GT(t->epsilon(), 0);
    for (float g : t->global()) ASSERT_EQ(g, 0.0f);
    RoundRun good = RunDistributed(*t, 20, {}, 0.05f);
    EXPECT_TRUE(good.outcome.released) << good.outcome.abort_reason;
    EXPECT_EQ(t->accountant().rounds_charged(), 2);
  }
}

TEST(FederatedTrainingTest, TheNormBoundIsATailBoundOfHonestSums) {
  auto t = Make(Recipe(DpMode::kDistributed, privacy::Sampling::kFixedSize));
  auto plan = t->PlanRound(5);
  ASSERT_TRUE(plan.ok());
  auto codec = privacy::DdgCodec::Create(plan->privacy.value);
  ASSERT_TRUE(codec.ok());
  const privacy::DdgParams& p = codec->params();
  const double bound = DecodedNormBound(p, 20);
  // The formula: gamma (n * scaled_l2_bound + sqrt(n sigma2 (D + 2 sqrt(D x) + 2 x))).
  const double x = std::log(1e9), d = static_cast<double>(p.padded_dim);
  EXPECT_NEAR(bound,
              p.gamma * (20 * p.scaled_l2_bound + std::sqrt(20 * p.local_sigma2_scaled *
                                                            (d + 2 * std::sqrt(d * x) + 2 * x))),
              1e-9 * bound);
  EXPECT_GT(DecodedNormBound(p, 21), bound);
  // Honest sums of 20 devices at the clip: the decoded norm stays under the bound, and the
  // bound is within a small factor of what is observed (noise-dominated: ~ sqrt(n sigma2 D)).
  privacy::PrepareOptions sim;
  sim.allow_seeded_noise = true;
  for (int trial = 0; trial < 5; ++trial) {
    std::vector<uint32_t> sum(p.padded_dim, 0);
    for (int dev = 0; dev < 20; ++dev) {
      SeededRandom rng(100 * trial + dev);
      std::vector<float> delta(64, 0.125f);  // norm 1 = the clip
      auto up = privacy::PrepareUpdate(delta.data(), delta.size(), plan->privacy, rng, sim);
      ASSERT_TRUE(up.ok());
      for (size_t j = 0; j < sum.size(); ++j) sum[j] = (sum[j] + up->secagg_input[j]) % (1u << 20);
    }
    auto decoded = codec->Decode(sum, plan->privacy.rotation_seed);
    ASSERT_TRUE(decoded.ok());
    const double norm = privacy::L2Norm(decoded->data(), decoded->size());
    EXPECT_LT(norm, bound) << trial;
    EXPECT_GT(norm, bound / 4) << trial;
  }
}

TEST(FederatedTrainingTest, BudgetStopsARoundBeforeItStarts) {
  auto recipe = Recipe(DpMode::kCentral, privacy::Sampling::kFixedSize);
  auto t = Make(recipe);
  auto first = t->FirstRoundEpsilon();
  ASSERT_TRUE(first.ok());
  recipe.epsilon_budget = *first * 0.5;
  auto tight = Make(recipe);
  auto plan = tight->PlanRound(1);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(plan.status().message(), HasSubstr("budget"));
}

TEST(FederatedTrainingTest, NonFiniteAggregateIsRefusedAndNothingIsCharged) {
  auto t = Make(Recipe(DpMode::kNone, privacy::Sampling::kFixedSize));
  auto plan = t->PlanRound(1);
  privacy::PreparedUpdate bad;
  bad.clipped_delta.assign(64, std::nanf(""));
  SecureRandom rng;
  auto out = t->CompleteCentral(*plan, {&bad}, rng);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  for (float g : t->global()) ASSERT_EQ(g, 0.0f);
}

TEST(FederatedTrainingTest, RecipeErrorsNameTheField) {
  auto r = Recipe(DpMode::kDistributed, privacy::Sampling::kFixedSize);
  r.expected_cohort = 500;
  auto t = FederatedTraining::Create(r, {}, std::vector<float>(64));
  EXPECT_THAT(t.status().message(), HasSubstr("expected_cohort"));
  r = Recipe(DpMode::kDistributed, privacy::Sampling::kFixedSize);
  EXPECT_EQ(FederatedTraining::Create(r, {}, std::vector<float>(63)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fedlora::coordinator
