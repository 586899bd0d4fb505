#include "packed_gemv.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "fedlora/common/simd.h"

namespace fedlora::compress::internal {
namespace {

// Expands codes[j0, j1) of one group into even (we) and odd (wo) columns. GH > 0: a whole group
// of GH bytes, a trip count the compiler knows, so that it vectorizes without a remainder loop
// (with group 64, a group is 32 bytes: two AVX-512 or four AVX2 iterations).
template <int GH>
inline void ExpandGroup(const uint8_t* codes, int64_t j0, int64_t j1, float s, float m, float* we,
                        float* wo) {
  const int64_t n = GH > 0 ? GH : j1 - j0;
  const uint8_t* c = codes + j0;
  float* e = we + j0;
  float* o = wo + j0;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    e[j] = m + s * static_cast<float>(c[j] & 15u);
    o[j] = m + s * static_cast<float>(c[j] >> 4);
  }
}

// One row of W against `rows` rows of x: the row's codes are expanded into even and odd
// columns (unit stride, so both loops vectorize), then one long dot product per row of x with
// the deinterleaved x. The row (a few KB) stays in L1 between the two.
template <int GH>
FEDLORA_SIMD void RowTimesX(const uint8_t* codes, const c10::Half* scales, const c10::Half* mins,
                            int64_t half, int64_t gh, const float* xe, const float* xo,
                            int64_t rows, float* we, float* wo, float* y, int64_t y_stride) {
  int64_t g = 0, j0 = 0;
  for (; j0 + gh <= half; j0 += gh, ++g) {
    ExpandGroup<GH>(codes, j0, j0 + gh, static_cast<float>(scales[g]),
                    static_cast<float>(mins[g]), we, wo);
  }
  if (j0 < half) {
    ExpandGroup<0>(codes, j0, half, static_cast<float>(scales[g]), static_cast<float>(mins[g]),
                   we, wo);
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = xe + r * half;
    const float* b = xo + r * half;
    float acc = 0.f;
#pragma omp simd reduction(+ : acc)
    for (int64_t j = 0; j < half; ++j) acc += we[j] * a[j] + wo[j] * b[j];
    y[r * y_stride] = acc;
  }
}

// Expands one row of 4-bit codes into float32 columns (interleaved: low nibble first).
template <int GH>
FEDLORA_SIMD void ExpandRowT(const uint8_t* codes, const c10::Half* scales, const c10::Half* mins,
                             int64_t half, int64_t gh, float* dst) {
  int64_t g = 0, j0 = 0;
  for (; j0 < half; j0 += gh, ++g) {
    const float s = static_cast<float>(scales[g]);
    const float m = static_cast<float>(mins[g]);
    const int64_t n = (GH > 0 && j0 + GH <= half) ? GH : std::min(gh, half - j0);
    const uint8_t* c = codes + j0;
    float* d = dst + 2 * j0;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      d[2 * j] = m + s * static_cast<float>(c[j] & 15u);
      d[2 * j + 1] = m + s * static_cast<float>(c[j] >> 4);
    }
  }
}

using RowFn = void (*)(const uint8_t*, const c10::Half*, const c10::Half*, int64_t, int64_t,
                       const float*, const float*, int64_t, float*, float*, float*, int64_t);

RowFn PickRow(int64_t gh) {
  switch (gh) {
    case 16: return RowTimesX<16>;   // group 32
    case 32: return RowTimesX<32>;   // group 64 (the default)
    case 64: return RowTimesX<64>;   // group 128
    default: return RowTimesX<0>;
  }
}

}  // namespace

void ExpandRow4(const uint8_t* codes, const c10::Half* scales, const c10::Half* mins, int64_t in,
                int64_t group, float* dst) {
  const int64_t half = in / 2, gh = group / 2;
  switch (gh) {
    case 16: return ExpandRowT<16>(codes, scales, mins, half, gh, dst);
    case 32: return ExpandRowT<32>(codes, scales, mins, half, gh, dst);
    case 64: return ExpandRowT<64>(codes, scales, mins, half, gh, dst);
    default: return ExpandRowT<0>(codes, scales, mins, half, gh, dst);
  }
}

void Gemv4(const float* x, int64_t rows, int64_t in, const uint8_t* codes, const c10::Half* scales,
           const c10::Half* mins, int64_t out, int64_t group, float* y) {
  const int64_t half = in / 2;
  const int64_t groups = (in + group - 1) / group;
  // x deinterleaved into even and odd columns, once.
  std::vector<float> xe(rows * half), xo(rows * half);
  for (int64_t m = 0; m < rows; ++m) {
    for (int64_t j = 0; j < half; ++j) {
      xe[m * half + j] = x[m * in + 2 * j];
      xo[m * half + j] = x[m * in + 2 * j + 1];
    }
  }
  const RowFn row_fn = PickRow(group / 2);
  at::parallel_for(0, out, 64, [&](int64_t r0, int64_t r1) {
    std::vector<float> we(half), wo(half);
    for (int64_t r = r0; r < r1; ++r) {
      row_fn(codes + r * half, scales + r * groups, mins + r * groups, half, group / 2,
                xe.data(), xo.data(), rows, we.data(), wo.data(), y + r, out);
    }
  });
}

}  // namespace fedlora::compress::internal
