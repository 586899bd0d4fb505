#include "fedlora/data/dataset.h"

#include <set>

#include "fedlora/common/random.h"
#include "fedlora/data/population.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::data {
namespace {

using ::testing::ElementsAre;

TEST(NumTestLinesTest, FloorsButKeepsOneOfEach) {
  EXPECT_EQ(NumTestLines(0, 0.2), 0u);
  EXPECT_EQ(NumTestLines(1, 0.2), 0u);  // A single line stays train.
  EXPECT_EQ(NumTestLines(2, 0.2), 1u);  // Raised to 1.
  EXPECT_EQ(NumTestLines(10, 0.2), 2u);
  EXPECT_EQ(NumTestLines(14, 0.2), 2u);  // floor(2.8)
  EXPECT_EQ(NumTestLines(10, 0.0), 0u);
  EXPECT_EQ(NumTestLines(10, 0.99), 9u);  // Always one train line.
}

TEST(SplitByPositionTest, EarlierLinesTrainLaterTest) {
  UserData u = SplitByPosition("u", {"a", "b", "c", "d", "e"}, 0.4);
  EXPECT_EQ(u.id, "u");
  EXPECT_THAT(u.train, ElementsAre("a", "b", "c"));
  EXPECT_THAT(u.test, ElementsAre("d", "e"));
  EXPECT_EQ(u.num_lines(), 5u);
  EXPECT_EQ(UserTrainText(u), "a\nb\nc");
  EXPECT_EQ(UserTestText(u), "d\ne");
}

TEST(ComputeStatsTest, CountsAndMedian) {
  FederatedDataset ds;
  ds.users.push_back(SplitByPosition("a", {"xx", "y"}, 0.5));         // 2 lines
  ds.users.push_back(SplitByPosition("b", {"1", "2", "3", "4"}, 0));  // 4 lines
  ds.users.push_back(SplitByPosition("c", {"z"}, 0.5));               // 1 line
  DatasetStats s = ComputeStats(ds);
  EXPECT_EQ(s.users, 3);
  EXPECT_EQ(s.train_lines, 6);
  EXPECT_EQ(s.test_lines, 1);
  EXPECT_EQ(s.chars, 8);
  EXPECT_EQ(s.min_lines_per_user, 1);
  EXPECT_EQ(s.median_lines_per_user, 2);
  EXPECT_EQ(s.max_lines_per_user, 4);
  ds.users.push_back(SplitByPosition("d", {"1", "2", "3"}, 0));
  EXPECT_EQ(ComputeStats(ds).median_lines_per_user, 2.5);
  EXPECT_EQ(ComputeStats(FederatedDataset{}).users, 0);
}

TEST(SplitPopulationTest, SizesDisjointAndCovering) {
  for (size_t n : {1u, 2u, 10u, 101u, 1000u}) {
    PopulationSplit s = SplitPopulation(n, 0.2, 7);
    std::set<int> all(s.train_users.begin(), s.train_users.end());
    for (int h : s.heldout_users) EXPECT_TRUE(all.insert(h).second) << "overlap at " << h;
    EXPECT_EQ(all.size(), n);
    EXPECT_EQ(*all.begin(), 0);
    EXPECT_EQ(*all.rbegin(), static_cast<int>(n) - 1);
    EXPECT_TRUE(std::is_sorted(s.train_users.begin(), s.train_users.end()));
    EXPECT_TRUE(std::is_sorted(s.heldout_users.begin(), s.heldout_users.end()));
  }
  EXPECT_EQ(SplitPopulation(1000, 0.2, 7).heldout_users.size(), 200u);
  EXPECT_EQ(SplitPopulation(101, 0.2, 7).heldout_users.size(), 20u);
  EXPECT_EQ(SplitPopulation(2, 0.01, 7).heldout_users.size(), 1u);  // At least one.
  EXPECT_EQ(SplitPopulation(1, 0.5, 7).heldout_users.size(), 0u);   // Never all.
  EXPECT_EQ(SplitPopulation(10, 0.0, 7).heldout_users.size(), 0u);
  EXPECT_EQ(SplitPopulation(10, 1.0, 7).heldout_users.size(), 10u);
}

TEST(SplitPopulationTest, DeterministicPerSeedAndSeedMatters) {
  EXPECT_EQ(SplitPopulation(500, 0.1, 3).heldout_users, SplitPopulation(500, 0.1, 3).heldout_users);
  EXPECT_NE(SplitPopulation(500, 0.1, 3).heldout_users, SplitPopulation(500, 0.1, 4).heldout_users);
}

TEST(SplitMix64Test, KnownSequenceAndUniformity) {
  // Reference splitmix64 output for seed 0 (Vigna's splitmix64.c).
  SplitMix64 r(0);
  EXPECT_EQ(r.NextU64(), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(r.NextU64(), 0x6e789e6aa1b965f4ULL);

  SplitMix64 rng(42);
  std::vector<int> counts(7, 0);
  const int kDraws = 70000;
  for (int i = 0; i < kDraws; ++i) ++counts[rng.Uniform(7)];
  for (int c : counts) EXPECT_NEAR(c, kDraws / 7, 400);  // ~4.4 sigma
  double sum = 0;
  for (int i = 0; i < 10000; ++i) {
    double u = rng.UniformDouble();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 10000, 0.5, 0.015);
  std::vector<int> w(3, 0);
  for (int i = 0; i < 30000; ++i) ++w[rng.Weighted({1.0, 0.0, 3.0})];
  EXPECT_EQ(w[1], 0);
  EXPECT_NEAR(w[2] / 30000.0, 0.75, 0.02);
}

TEST(DeriveSeedTest, StreamsDiffer) {
  std::set<uint64_t> seen;
  for (uint64_t s = 0; s < 4; ++s) {
    for (uint64_t k = 0; k < 100; ++k) seen.insert(DeriveSeed(s, k));
  }
  EXPECT_EQ(seen.size(), 400u);
}

}  // namespace
}  // namespace fedlora::data
