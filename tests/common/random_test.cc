#include "fedlora/common/random.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace fedlora {
namespace {

TEST(RandomTest, SeededSourcesRepeatPerSeedAndDifferAcrossSeeds) {
  SeededRandom a(1), b(1), c(2);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(a.NextU64(), b.NextU64());
  EXPECT_NE(a.NextU64(), c.NextU64());
  EXPECT_FALSE(a.secure());
  SplitMix64 s(5), t(5);
  EXPECT_EQ(s.NextU64(), t.NextU64());
  EXPECT_FALSE(s.secure());
}

TEST(RandomTest, FillAndNextU64ReadOneStream) {
  // Mixing Fill and NextU64 (across the 4 KiB buffer boundary) reads the same keystream.
  SeededRandom c(9);
  std::vector<uint8_t> first(5 + 600 * 8);
  c.Fill(first.data(), first.size());
  SeededRandom d(9);
  uint8_t head[5];
  d.Fill(head, 5);
  for (int i = 0; i < 600; ++i) {
    uint64_t v = d.NextU64();
    for (int k = 0; k < 8; ++k) ASSERT_EQ(static_cast<uint8_t>(v >> (8 * k)), first[5 + 8 * i + k]);
  }
}

TEST(RandomTest, SecureRandomIsSecureAndNeverRepeats) {
  SecureRandom a, b;
  EXPECT_TRUE(a.secure());
  std::set<uint64_t> seen;
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(seen.insert(a.NextU64()).second);
    ASSERT_TRUE(seen.insert(b.NextU64()).second);
  }
  uint8_t x[32] = {0}, y[32] = {0};
  a.Fill(x, sizeof(x));
  b.Fill(y, sizeof(y));
  EXPECT_NE(std::vector<uint8_t>(x, x + 32), std::vector<uint8_t>(y, y + 32));
}

TEST(RandomTest, SecureRandomRekeysAndKeepsGoingPastOneMebibyte) {
  SecureRandom r;
  std::vector<uint8_t> big(3 << 20);
  r.Fill(big.data(), big.size());
  // 1 MiB blocks under different keys: the blocks differ, and bytes look uniform.
  EXPECT_FALSE(std::equal(big.begin(), big.begin() + (1 << 20), big.begin() + (1 << 20)));
  std::vector<int> counts(256, 0);
  for (uint8_t b : big) ++counts[b];
  double chi2 = 0;
  const double e = big.size() / 256.0;
  for (int c : counts) chi2 += (c - e) * (c - e) / e;
  EXPECT_LT(chi2, 330.5);  // 255 dof, p = 0.001
}

// A forked child must not hand out the bytes its parent already buffered.
TEST(RandomTest, SecureRandomParentAndForkedChildDiffer) {
  SecureRandom r;
  (void)r.NextU64();  // fill the buffer before the fork
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    uint64_t v = r.NextU64();
    ssize_t w = write(fds[1], &v, sizeof(v));
    _exit(w == sizeof(v) ? 0 : 1);
  }
  const uint64_t mine = r.NextU64();
  uint64_t child = 0;
  ASSERT_EQ(read(fds[0], &child, sizeof(child)), static_cast<ssize_t>(sizeof(child)));
  int status = 0;
  waitpid(pid, &status, 0);
  close(fds[0]);
  close(fds[1]);
  EXPECT_NE(mine, child);
}

TEST(RandomTest, DrawsHaveTheRightDistribution) {
  SeededRandom r(3);
  std::vector<int> counts(10, 0);
  const int n = 100000;
  for (int i = 0; i < n; ++i) ++counts[r.Uniform(10)];
  double chi2 = 0;
  for (int c : counts) chi2 += std::pow(c - n / 10.0, 2) / (n / 10.0);
  EXPECT_LT(chi2, 27.9);  // 9 dof, p = 0.001
  double sum = 0, sum2 = 0;
  for (int i = 0; i < n; ++i) {
    double z = r.StandardNormal();
    sum += z;
    sum2 += z * z;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.015);
  EXPECT_NEAR(sum2 / n, 1.0, 0.02);
  int heads = 0;
  for (int i = 0; i < n; ++i) heads += r.Bernoulli(0.25);
  EXPECT_NEAR(heads / double(n), 0.25, 0.006);
  EXPECT_FALSE(r.Bernoulli(0.0));
  EXPECT_TRUE(r.Bernoulli(1.0));
}

TEST(RandomTest, DeriveSeedSeparatesStreams) {
  EXPECT_EQ(DeriveSeed(1, 2), DeriveSeed(1, 2));
  EXPECT_NE(DeriveSeed(1, 2), DeriveSeed(1, 3));
  EXPECT_NE(DeriveSeed(1, 2), DeriveSeed(2, 2));
}

}  // namespace
}  // namespace fedlora
