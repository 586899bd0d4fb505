// Packed formats against reference computations written out element by element here.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "compress/compress_testutil.h"
#include "fedlora/compress/composite.h"
#include "fedlora/compress/hadamard.h"
#include "fedlora/compress/int8.h"
#include "fedlora/compress/nf4.h"
#include "fedlora/compress/rtn.h"
#include "fedlora/io/safetensors.h"

namespace fedlora::compress {
namespace {

using testing::TestMatrix;

// float -> float16 -> float, through io's reference conversion (not torch's).
float Half(float x) { return io::HalfToFloat(io::FloatToHalf(x)); }

TEST(BitPackTest, MatchesBitByBitReference) {
  for (int bits = 1; bits <= 8; ++bits) {
    const int64_t n = 1001;
    auto gen = at::detail::createCPUGenerator(bits);
    torch::Tensor codes = at::randint(0, 1 << bits, {n}, gen, torch::kInt32);
    torch::Tensor packed = PackBits(codes, bits);
    ASSERT_EQ(packed.numel(), (n * bits + 7) / 8);
    const uint8_t* p = packed.data_ptr<uint8_t>();
    const int32_t* c = codes.data_ptr<int32_t>();
    for (int64_t i = 0; i < n; ++i) {
      for (int k = 0; k < bits; ++k) {
        const int64_t pos = i * bits + k;
        ASSERT_EQ((p[pos / 8] >> (pos % 8)) & 1, (c[i] >> k) & 1) << "bits " << bits << " i " << i;
      }
    }
    EXPECT_TRUE(torch::equal(UnpackBits(packed, bits, n).to(torch::kInt32), codes));
  }
}

TEST(RtnTest, DenseMatchesScalarReference) {
  for (int bits : {2, 3, 4}) {
    for (int group : {32, 64, 128}) {
      const int64_t out = 7, in = 200;  // 200 % group != 0: a short last group
      torch::Tensor w = TestMatrix(out, in, 100 + bits * 1000 + group);
      auto q = RtnWeight::Quantize(w, bits, group);
      ASSERT_TRUE(q.ok()) << q.status();
      torch::Tensor dense = (*q)->Dense();
      const float* x = w.data_ptr<float>();
      const float* d = dense.data_ptr<float>();
      const int qmax = (1 << bits) - 1;
      for (int64_t r = 0; r < out; ++r) {
        for (int64_t g0 = 0; g0 < in; g0 += group) {
          const int64_t g1 = std::min<int64_t>(in, g0 + group);
          float mn = x[r * in + g0], mx = mn;
          for (int64_t c = g0; c < g1; ++c) {
            mn = std::min(mn, x[r * in + c]);
            mx = std::max(mx, x[r * in + c]);
          }
          const float scale = Half((mx - mn) / static_cast<float>(qmax));
          const float min = Half(mn);
          for (int64_t c = g0; c < g1; ++c) {
            float code = scale > 0 ? std::floor((x[r * in + c] - min) / scale + 0.5f) : 0.0f;
            code = std::min<float>(qmax, std::max(0.0f, code));
            ASSERT_EQ(d[r * in + c], min + scale * code)
                << "bits " << bits << " group " << group << " r " << r << " c " << c;
          }
          // Round to nearest: error at most half a step (plus the fp16 rounding of min/scale).
          for (int64_t c = g0; c < g1; ++c) {
            EXPECT_LE(std::fabs(d[r * in + c] - x[r * in + c]),
                      0.5f * scale + 1e-3f * (mx - mn) + 1e-6f);
          }
        }
      }
      const int64_t groups = (in + group - 1) / group;
      const int64_t bytes = (out * in * bits + 7) / 8 + 2 * 2 * out * groups;
      EXPECT_EQ((*q)->bytes(), bytes);
      EXPECT_DOUBLE_EQ((*q)->bits_per_weight(), 8.0 * bytes / (out * in));
    }
  }
}

TEST(RtnTest, MoreBitsLessError) {
  torch::Tensor w = TestMatrix(64, 256, 7);
  double prev = 1e30;
  for (int bits : {2, 3, 4, 8}) {
    auto q = RtnWeight::Quantize(w, bits, 64);
    ASSERT_TRUE(q.ok());
    const double err = ((*q)->Dense() - w).pow(2).sum().item<double>();
    EXPECT_LT(err, prev) << bits;
    prev = err;
  }
}

// Apply on a few rows (decoding) works from the 4-bit codes without expanding W; it must equal
// x Dense()^T: whole and short last groups, 1..8 rows in any leading shape, and the shapes it
// hands to the BLAS path (more rows, 3 bits, an odd group) too.
TEST(RtnTest, ApplyFromCodesMatchesDense) {
  struct Case { int64_t out, in; int bits, group; std::vector<int64_t> lead; };
  const std::vector<Case> cases = {
      {37, 96, 4, 32, {1}},       {37, 96, 4, 32, {8}},      {64, 100, 4, 64, {2, 3}},
      {5, 130, 4, 64, {1, 1}},    {33, 96, 4, 32, {9}},      {16, 96, 3, 32, {2}},
      {16, 96, 4, 33, {2}}};
  for (const Case& c : cases) {
    auto q = RtnWeight::Quantize(TestMatrix(c.out, c.in, 3), c.bits, c.group);
    ASSERT_TRUE(q.ok());
    std::vector<int64_t> shape = c.lead;
    shape.push_back(c.in);
    torch::Tensor x = torch::randn(shape, torch::TensorOptions().dtype(torch::kFloat));
    torch::Tensor want = at::linear(x, (*q)->Dense());
    torch::Tensor got = (*q)->Apply(x);
    ASSERT_EQ(got.sizes(), want.sizes()) << c.out << "x" << c.in;
    EXPECT_TRUE(torch::allclose(got, want, 1e-4, 1e-4))
        << c.out << "x" << c.in << " b" << c.bits << " g" << c.group << ": max diff "
        << (got - want).abs().max().item<float>();
  }
}

TEST(RtnTest, RefusesNonFinite) {
  torch::Tensor w = TestMatrix(4, 64, 1);
  w[1][3] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(RtnWeight::Quantize(w, 4, 32).ok());
}

TEST(Int8Test, DenseMatchesScalarReference) {
  const int64_t out = 9, in = 77;
  torch::Tensor w = TestMatrix(out, in, 3);
  w[4].zero_();  // an all-zero row: scale 0, codes 0
  auto q = Int8Weight::Quantize(w);
  ASSERT_TRUE(q.ok());
  torch::Tensor dense = (*q)->Dense();
  for (int64_t r = 0; r < out; ++r) {
    float amax = 0;
    for (int64_t c = 0; c < in; ++c) amax = std::max(amax, std::fabs(w[r][c].item<float>()));
    const float s = Half(amax / 127.0f);
    for (int64_t c = 0; c < in; ++c) {
      const float v = s > 0 ? w[r][c].item<float>() / s : 0.0f;
      float q8 = std::copysign(std::floor(std::fabs(v) + 0.5f), v);
      q8 = std::min(127.0f, std::max(-127.0f, q8));
      ASSERT_EQ(dense[r][c].item<float>(), s * q8) << r << "," << c;
    }
  }
  EXPECT_EQ((*q)->bytes(), out * in + 2 * out);
}

TEST(Nf4Test, DenseMatchesScalarReference) {
  const int64_t out = 40, in = 100;  // 4000 weights: 63 blocks of 64 (last one short)
  torch::Tensor w = TestMatrix(out, in, 11);
  auto q = Nf4Weight::Quantize(w);
  ASSERT_TRUE(q.ok());
  const int64_t n = out * in, blocks = (n + 63) / 64;
  const float* x = w.data_ptr<float>();
  std::vector<float> absmax(blocks, 0.0f);
  for (int64_t i = 0; i < n; ++i) absmax[i / 64] = std::max(absmax[i / 64], std::fabs(x[i]));
  double sum = 0;
  for (float a : absmax) sum += a;
  const float mean = static_cast<float>(sum / blocks);
  float c2 = 0;  // one absmax-scale block (63 < 256)
  for (float a : absmax) c2 = std::max(c2, std::fabs(a - mean));
  torch::Tensor dense = (*q)->Dense();
  const float* d = dense.data_ptr<float>();
  for (int64_t b = 0; b < blocks; ++b) {
    const float v = (absmax[b] - mean) / c2 * 127.0f;
    const float code = std::copysign(std::floor(std::fabs(v) + 0.5f), v);
    const float a = mean + c2 * code / 127.0f;
    EXPECT_NEAR(a, absmax[b], c2 / 127.0f);
    for (int64_t i = b * 64; i < std::min(n, (b + 1) * 64); ++i) {
      const float t = x[i] / a;
      int best = 0;
      for (int k = 1; k < 16; ++k) {
        if (std::fabs(t - kNf4CodeBook[k]) < std::fabs(t - kNf4CodeBook[best])) best = k;
      }
      ASSERT_EQ(d[i], kNf4CodeBook[best] * a) << i;
    }
  }
  // codes 4 bits + int8 per 64 + float32 per 256 blocks + float32 mean
  EXPECT_EQ((*q)->bytes(), (n + 1) / 2 + blocks + 4 + 4);
}

TEST(CompositeTest, LowRankAndMaskedDense) {
  torch::Tensor w = TestMatrix(16, 32, 5);
  auto q = RtnWeight::Quantize(w, 4, 32);
  auto l = RtnWeight::Quantize(TestMatrix(16, 4, 6), 4, 4);
  auto r = RtnWeight::Quantize(TestMatrix(4, 32, 7), 4, 32);
  ASSERT_TRUE(q.ok() && l.ok() && r.ok());
  LowRankWeight lr(*q, *l, *r);
  torch::Tensor expect = (*q)->Dense() + (*l)->Dense().mm((*r)->Dense());
  EXPECT_TRUE(torch::allclose(lr.Dense(), expect, 1e-6, 1e-6));
  torch::Tensor x = TestMatrix(3, 32, 8);
  EXPECT_TRUE(torch::allclose(lr.Apply(x), x.mm(expect.t()), 1e-5, 1e-5));
  EXPECT_EQ(lr.bytes(), (*q)->bytes() + (*l)->bytes() + (*r)->bytes());

  torch::Tensor mask = TestMatrix(16, 32, 9) > 0;
  MaskedWeight m(*q, mask);
  EXPECT_TRUE(torch::equal(m.Mask(), mask));
  EXPECT_TRUE(torch::equal(m.Dense(), (*q)->Dense() * mask));
  EXPECT_EQ(m.bytes(), (*q)->bytes() + (16 * 32 + 7) / 8);
}

TEST(HadamardTest, OrthogonalAndMatchesExplicitMatrix) {
  for (int64_t n : {64, 172, 96}) {  // blocks 64, 4, 32
    RandomHadamard t(n, 99);
    EXPECT_EQ(n % t.block(), 0);
    EXPECT_NE((n / t.block()) % 2, 0);  // the largest power of two dividing n
    torch::Tensor eye = torch::eye(n, torch::kDouble);
    torch::Tensor m = t.Apply(eye).t();  // columns T e_i -> T
    EXPECT_TRUE(torch::allclose(m.mm(m.t()), eye, 1e-9, 1e-9)) << n;
    // Explicit T = blockdiag(Sylvester Hadamard / sqrt(b)) diag(s).
    const int64_t b = t.block();
    torch::Tensor had = torch::ones({1, 1}, torch::kDouble);
    while (had.size(0) < b)
      had = torch::cat({torch::cat({had, had}, 1), torch::cat({had, -had}, 1)}, 0);
    torch::Tensor block0 = m.narrow(0, 0, b).narrow(1, 0, b);
    // Row i of block0 = had[i] * s / sqrt(b): |entries| all 1/sqrt(b), pattern of had up to column
    // signs.
    torch::Tensor col_signs = torch::sign(block0[0]) * torch::sign(had[0]);
    EXPECT_TRUE(torch::allclose(block0, had * col_signs / std::sqrt(double(b)), 1e-12, 1e-12)) << n;
    torch::Tensor x = TestMatrix(3, n, 5).to(torch::kDouble);
    EXPECT_TRUE(torch::allclose(t.ApplyTransposed(t.Apply(x)), x, 1e-9, 1e-9));
    EXPECT_TRUE(torch::allclose(t.Apply(x), x.mm(m.t()), 1e-9, 1e-9));
  }
}

}  // namespace
}  // namespace fedlora::compress
