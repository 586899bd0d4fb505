// exp for float32 written so that GCC vectorizes it inside `omp simd` loops (libm's expf is a
// call that stops vectorization unless the whole file is built with -ffast-math, which would
// also drop the -inf and NaN semantics the masks rely on). Internal to model/.
#ifndef FEDLORA_MODEL_SRC_FAST_EXP_H_
#define FEDLORA_MODEL_SRC_FAST_EXP_H_

#include <cstdint>

namespace fedlora::model::internal {

// Cephes' expf: x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two for exactness), a degree-5
// polynomial for e^r, and 2^n put into the exponent bits. Relative error under 1 ulp on
// [-87.3, 88.4]; below that (including -inf) exactly 0, as a masked softmax entry must be;
// above it the largest value at 88.4 (about 2.4e38, not inf: callers only feed x <= 0, or
// -g for a sigmoid, where that still gives 0); NaN stays NaN. Rounding to the nearest n uses the 1.5 * 2^23 trick (no libm call).
inline float ExpForSimd(float x) {
  constexpr float kLo = -87.33654f, kHi = 88.37626f;
  // Written so that NaN clamps to kLo here (comparisons with NaN are false): the conversion to
  // int below then never sees NaN, and NaN is returned as such at the end.
  float xc = x > kLo ? x : kLo;
  xc = xc < kHi ? xc : kHi;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23
  const float n = (xc * 1.44269504088896341f + kRound) - kRound;
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  const float scale = __builtin_bit_cast(float, bits);
  const float y = x < kLo ? 0.0f : p * scale;
  return x == x ? y : x;
}

}  // namespace fedlora::model::internal

#endif  // FEDLORA_MODEL_SRC_FAST_EXP_H_
