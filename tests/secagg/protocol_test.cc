// End-to-end rounds through the in-process driver: exact sums with dropouts in every phase,
// for the complete and the k-regular graph, and aborts below threshold.
#include <gtest/gtest.h>

#include <set>
#include <tuple>

#include "fedlora/secagg/round_driver.h"
#include "secagg_testutil.h"

namespace fedlora::secagg {
namespace {

using testing::IncludedFromReport;
using testing::MakeRoundConfig;
using testing::RandomInputs;

TEST(ProtocolTest, NoDropoutsGivesExactSumForEveryBitWidth) {
  for (int bits : {1, 7, 16, 32}) {
    const uint32_t n = 12;
    auto inputs = RandomInputs(n, 777, bits, bits);
    SeededRandom rng(bits);
    auto r = RunInProcessRound(MakeRoundConfig(n, 777, bits, proto::SECAGG_GRAPH_COMPLETE), inputs,
                               DropoutPlan::None(), rng);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_FALSE(r->aborted) << r->abort_status;
    EXPECT_EQ(r->included_devices.size(), n);
    std::vector<uint32_t> all(n);
    for (uint32_t i = 0; i < n; ++i) all[i] = i;
    EXPECT_EQ(r->sum, PlainSum(inputs, all, bits)) << "bits " << bits;
    for (const auto& d : r->report.devices) {
      EXPECT_GT(d.bytes_sent, 777u * bits / 8);
      EXPECT_GT(d.bytes_received, 0u);
    }
  }
}

// (graph, phase, dropout fraction)
class DropoutTest : public ::testing::TestWithParam<std::tuple<proto::SecAggGraph, int, double>> {};

TEST_P(DropoutTest, ExactSumOfSurvivors) {
  const auto [graph, phase_index, rate] = GetParam();
  const Phase phase = static_cast<Phase>(phase_index);
  const uint32_t n = 60;
  const int bits = 20;
  const uint64_t dim = 500;
  auto inputs = RandomInputs(n, dim, bits, 99);
  SeededRandom rng(1000 + phase_index * 10 + static_cast<int>(rate * 100));
  const RoundConfig cfg = graph == proto::SECAGG_GRAPH_COMPLETE
                              ? MakeRoundConfig(n, dim, bits, graph, /*threshold=*/31)
                              : MakeRoundConfig(n, dim, bits, graph, /*threshold=*/7,
                                                /*degree=*/20);
  const DropoutPlan plan = DropoutPlan::ExactFraction(phase, rate, n, rng);
  auto r = RunInProcessRound(cfg, inputs, plan, rng);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_FALSE(r->aborted) << r->abort_status;
  const auto& silent = plan.silent_in_phase[phase_index];
  // Devices silent before their masked input are out; silent in unmasking are still in.
  std::vector<uint32_t> expected;
  for (uint32_t u = 0; u < n; ++u) {
    const bool is_silent = std::count(silent.begin(), silent.end(), u) > 0;
    if (!is_silent || phase == Phase::kUnmasking) expected.push_back(u);
  }
  EXPECT_EQ(r->included_devices, expected);
  EXPECT_EQ(IncludedFromReport(*r), expected);
  EXPECT_EQ(r->sum, PlainSum(inputs, expected, bits));
  for (uint32_t u : silent) {
    EXPECT_TRUE(r->report.devices[u].injected_dropout);
    EXPECT_EQ(r->report.devices[u].dropped_in, phase);
    EXPECT_EQ(r->report.devices[u].reason, DropReason::kNoResponse);
  }
  EXPECT_EQ(r->report.drop_counts[static_cast<int>(DropReason::kNoResponse)],
            static_cast<int>(silent.size()));
}

INSTANTIATE_TEST_SUITE_P(AllPhases, DropoutTest,
                         ::testing::Combine(::testing::Values(proto::SECAGG_GRAPH_COMPLETE,
                                                              proto::SECAGG_GRAPH_KREGULAR),
                                            ::testing::Values(0, 1, 2, 3),
                                            ::testing::Values(0.0, 0.1, 0.3)));

TEST(ProtocolTest, DropoutsSpreadOverEveryPhase) {
  for (auto graph : {proto::SECAGG_GRAPH_COMPLETE, proto::SECAGG_GRAPH_KREGULAR}) {
    const uint32_t n = 80;
    auto inputs = RandomInputs(n, 300, 32, 5);
    SeededRandom rng(77);
    DropoutPlan plan;
    plan.probability = {0.08, 0.08, 0.08, 0.08};  // ~30% in total
    const RoundConfig cfg = graph == proto::SECAGG_GRAPH_COMPLETE
                                ? MakeRoundConfig(n, 300, 32, graph, 41)
                                : MakeRoundConfig(n, 300, 32, graph, 8, 24);
    auto r = RunInProcessRound(cfg, inputs, plan, rng);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_FALSE(r->aborted) << r->abort_status;
    int silent = 0;
    for (const auto& d : r->report.devices) silent += d.injected_dropout;
    EXPECT_GT(silent, 10);
    EXPECT_LT(r->included_devices.size(), n);
    EXPECT_EQ(r->sum, PlainSum(inputs, r->included_devices, 32));
  }
}

class AbortTest : public ::testing::TestWithParam<int> {};

TEST_P(AbortTest, BelowThresholdAbortsWithReason) {
  const int phase_index = GetParam();
  const uint32_t n = 10;
  auto inputs = RandomInputs(n, 64, 16, 3);
  SeededRandom rng(phase_index);
  DropoutPlan plan;
  plan.silent_in_phase[phase_index] = {0, 2, 4, 6, 8};  // 5 left, threshold 6
  auto r = RunInProcessRound(MakeRoundConfig(n, 64, 16, proto::SECAGG_GRAPH_COMPLETE, 6), inputs,
                             plan, rng);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->aborted);
  EXPECT_EQ(r->abort_status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r->abort_status.message().find("threshold 6"), std::string::npos) << r->abort_status;
  EXPECT_TRUE(r->sum.empty());
  EXPECT_TRUE(r->included_devices.empty());
}

INSTANTIATE_TEST_SUITE_P(AllPhases, AbortTest, ::testing::Values(0, 1, 2, 3));

TEST(ProtocolTest, ExactlyThresholdSurvivorsStillSucceed) {
  const uint32_t n = 10;
  auto inputs = RandomInputs(n, 64, 16, 4);
  SeededRandom rng(4);
  DropoutPlan plan;
  plan.silent_in_phase[2] = {1, 3, 5, 7};  // 6 left == threshold
  auto r = RunInProcessRound(MakeRoundConfig(n, 64, 16, proto::SECAGG_GRAPH_COMPLETE, 6), inputs,
                             plan, rng);
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE(r->aborted) << r->abort_status;
  EXPECT_EQ(r->sum, PlainSum(inputs, {0, 2, 4, 6, 8, 9}, 16));
}

TEST(ProtocolTest, RejectsInputsThatDoNotMatchTheConfig) {
  SeededRandom rng(1);
  auto cfg = MakeRoundConfig(4, 8, 8, proto::SECAGG_GRAPH_COMPLETE);
  auto inputs = RandomInputs(4, 8, 8, 1);
  inputs[2][3] = 256;  // >= 2^8
  EXPECT_EQ(RunInProcessRound(cfg, inputs, DropoutPlan::None(), rng).status().code(),
            absl::StatusCode::kInvalidArgument);
  inputs = RandomInputs(3, 8, 8, 1);
  EXPECT_EQ(RunInProcessRound(cfg, inputs, DropoutPlan::None(), rng).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Distributed DP: the devices' noise is calibrated for min_sum_devices survivors; above the
// threshold but below that, the server must not unmask (k-regular and complete graphs).
TEST(ProtocolTest, FewerSurvivorsThanMinSumDevicesAbortBeforeUnmasking) {
  for (auto graph : {proto::SECAGG_GRAPH_COMPLETE, proto::SECAGG_GRAPH_KREGULAR}) {
    const uint32_t n = 30;
    auto inputs = RandomInputs(n, 32, 16, 5);
    SeededRandom rng(5);
    auto cfg = MakeRoundConfig(n, 32, 16, graph);
    cfg.session.min_sum_devices = 25;
    DropoutPlan plan;
    plan.silent_in_phase[2] = {0, 1, 2, 3, 4, 5};  // 24 masked inputs arrive
    auto r = RunInProcessRound(cfg, inputs, plan, rng);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->aborted);
    EXPECT_NE(r->abort_status.message().find("24 survivors < min_clients 25"), std::string::npos)
        << r->abort_status;
    EXPECT_TRUE(r->sum.empty());
    // One survivor more is enough.
    plan.silent_in_phase[2] = {0, 1, 2, 3, 4};
    SeededRandom rng2(5);
    auto ok = RunInProcessRound(cfg, inputs, plan, rng2);
    ASSERT_TRUE(ok.ok());
    ASSERT_FALSE(ok->aborted) << ok->abort_status;
    EXPECT_EQ(ok->included_devices.size(), 25u);
  }
  SeededRandom rng(1);
  SessionParams p;
  p.num_devices = 10;
  p.dim = 4;
  p.bits = 16;
  p.min_sum_devices = 11;
  EXPECT_EQ(MakeSessionConfig(p, rng).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fedlora::secagg
