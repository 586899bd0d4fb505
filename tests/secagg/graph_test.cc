#include "fedlora/secagg/graph.h"

#include <gtest/gtest.h>

#include "fedlora/secagg/graph_parameters.h"
#include "fedlora/secagg/session_config.h"

namespace fedlora::secagg {
namespace {

proto::SecAggSessionConfig KRegular(uint32_t n, uint32_t k) {
  proto::SecAggSessionConfig c;
  c.set_num_devices(n);
  c.set_degree(k);
  c.set_graph(proto::SECAGG_GRAPH_KREGULAR);
  c.set_graph_seed(std::string(32, '\x07'));
  return c;
}

TEST(GraphTest, KRegularGraphIsRegularAndSymmetric) {
  auto g = NeighbourGraph::Create(KRegular(101, 10));
  ASSERT_TRUE(g.ok()) << g.status();
  for (uint32_t u = 0; u < 101; ++u) {
    const auto nb = g->Neighbours(u);
    ASSERT_EQ(nb.size(), 10u);
    for (uint32_t v : nb) {
      EXPECT_NE(u, v);
      EXPECT_TRUE(g->AreNeighbours(v, u));
    }
    int count = 0;
    for (uint32_t v = 0; v < 101; ++v) count += g->AreNeighbours(u, v);
    EXPECT_EQ(count, 10);
  }
}

TEST(GraphTest, SeedChangesTheGraph) {
  auto c = KRegular(200, 8);
  auto g1 = NeighbourGraph::Create(c);
  c.set_graph_seed(std::string(32, '\x08'));
  auto g2 = NeighbourGraph::Create(c);
  ASSERT_TRUE(g1.ok() && g2.ok());
  EXPECT_NE(g1->Neighbours(0), g2->Neighbours(0));
}

TEST(GraphTest, RejectsBadDegrees) {
  EXPECT_FALSE(NeighbourGraph::Create(KRegular(10, 3)).ok());
  EXPECT_FALSE(NeighbourGraph::Create(KRegular(10, 10)).ok());
  EXPECT_FALSE(NeighbourGraph::Create(KRegular(10, 0)).ok());
  auto c = KRegular(10, 9);
  c.set_graph(proto::SECAGG_GRAPH_COMPLETE);
  EXPECT_TRUE(NeighbourGraph::Create(c).ok());
  c.set_degree(5);
  EXPECT_FALSE(NeighbourGraph::Create(c).ok());
}

TEST(GraphParametersTest, DegreeGrowsSlowlyWithN) {
  uint32_t prev_degree = 0;
  for (uint32_t n : {500u, 1000u, 10000u}) {
    auto p = ComputeKRegularParameters(n, 0.1, 0.05);
    ASSERT_TRUE(p.ok()) << n << ": " << p.status();
    EXPECT_EQ(p->degree % 2, 0u);
    EXPECT_GE(p->threshold, 2u);
    EXPECT_LE(p->threshold, p->degree);
    EXPECT_LT(p->degree, n / 2) << n;
    EXPECT_GE(p->degree, prev_degree);
    prev_degree = p->degree;
  }
  // Far below n log n growth: 20x the devices, much less than 20x the degree.
  auto small = ComputeKRegularParameters(500, 0.1, 0.05);
  auto large = ComputeKRegularParameters(10000, 0.1, 0.05);
  EXPECT_LT(large->degree, 3 * small->degree);
}

TEST(GraphParametersTest, HigherRatesNeedLargerDegree) {
  auto low = ComputeKRegularParameters(1000, 0.05, 0.05);
  auto high = ComputeKRegularParameters(1000, 0.3, 0.1);
  ASSERT_TRUE(low.ok() && high.ok());
  EXPECT_GT(high->degree, low->degree);
  EXPECT_FALSE(ComputeKRegularParameters(1000, 0.6, 0.4).ok());
}

TEST(SessionConfigTest, DerivesThresholdAndDegree) {
  SeededRandom rng(1);
  SessionParams p;
  p.num_devices = 100;
  p.dim = 10;
  p.bits = 16;
  auto c = MakeSessionConfig(p, rng);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->threshold(), 51u);
  EXPECT_EQ(c->degree(), 99u);
  EXPECT_EQ(c->round_nonce().size(), 32u);
  p.bits = 33;
  EXPECT_EQ(MakeSessionConfig(p, rng).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fedlora::secagg
