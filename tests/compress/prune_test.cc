// Pruning masks against reference selections.
#include "fedlora/compress/prune.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "compress/compress_testutil.h"

namespace fedlora::compress {
namespace {

using testing::TestMatrix;

TEST(PruneTest, MagnitudeRemovesSmallestFraction) {
  torch::Tensor w = TestMatrix(20, 50, 41);
  auto mask = PruneMask(w, PruneMethod::kMagnitude, 0.3);
  ASSERT_TRUE(mask.ok());
  const int64_t pruned = (~*mask).sum().item<int64_t>();
  EXPECT_EQ(pruned, 300);
  // Every kept |w| >= every pruned |w|.
  torch::Tensor a = w.abs();
  EXPECT_GE(a.masked_select(*mask).min().item<float>(),
            a.masked_select(~*mask).max().item<float>());
}

TEST(PruneTest, WandaPerRowByActivationScore) {
  torch::Tensor w = TestMatrix(6, 40, 42);
  auto gen = at::detail::createCPUGenerator(43);
  torch::Tensor norms = at::rand({40}, gen, torch::kFloat) * 10;
  auto mask = PruneMask(w, PruneMethod::kWanda, 0.5, norms);
  ASSERT_TRUE(mask.ok());
  for (int64_t r = 0; r < 6; ++r) {
    std::vector<std::pair<float, int64_t>> s;
    for (int64_t c = 0; c < 40; ++c)
      s.push_back({std::fabs(w[r][c].item<float>()) * norms[c].item<float>(), c});
    std::sort(s.begin(), s.end());
    for (int64_t i = 0; i < 40; ++i) {
      EXPECT_EQ((*mask)[r][s[i].second].item<bool>(), i >= 20) << r << " " << s[i].second;
    }
  }
  EXPECT_FALSE(PruneMask(w, PruneMethod::kWanda, 0.5).ok());  // needs activations
}

TEST(PruneTest, TwoFourKeepsTwoLargestOfEachFour) {
  torch::Tensor w = TestMatrix(5, 18, 44);  // 18 = 4 * 4 + 2: tail of 2 kept
  auto mask = PruneMask(w, PruneMethod::kTwoFour, 0.5);
  ASSERT_TRUE(mask.ok());
  for (int64_t r = 0; r < 5; ++r) {
    for (int64_t g = 0; g < 4; ++g) {
      std::vector<std::pair<float, int64_t>> s;
      for (int64_t c = 4 * g; c < 4 * g + 4; ++c)
        s.push_back({std::fabs(w[r][c].item<float>()), c});
      std::sort(s.begin(), s.end());
      EXPECT_FALSE((*mask)[r][s[0].second].item<bool>());
      EXPECT_FALSE((*mask)[r][s[1].second].item<bool>());
      EXPECT_TRUE((*mask)[r][s[2].second].item<bool>());
      EXPECT_TRUE((*mask)[r][s[3].second].item<bool>());
    }
    EXPECT_TRUE((*mask)[r][16].item<bool>() && (*mask)[r][17].item<bool>());
  }
}

TEST(PruneTest, RefusesBadSparsityAndNames) {
  torch::Tensor w = TestMatrix(4, 8, 45);
  EXPECT_FALSE(PruneMask(w, PruneMethod::kMagnitude, 1.0).ok());
  EXPECT_FALSE(PruneMask(w, PruneMethod::kMagnitude, -0.1).ok());
  EXPECT_FALSE(ParsePruneMethod("random").ok());
  EXPECT_EQ(*ParsePruneMethod("2:4"), PruneMethod::kTwoFour);
}

}  // namespace
}  // namespace fedlora::compress
