// The shifted exp of one row, shared by the attention softmax and the LM head's cross-entropy.
// Internal to model/; include only from files built with -fopenmp-simd (its loops carry
// `omp simd` pragmas) and call from FEDLORA_SIMD functions, into whose every clone it inlines.
#ifndef FEDLORA_MODEL_SRC_EXP_ROWS_H_
#define FEDLORA_MODEL_SRC_EXP_ROWS_H_

#include <cstdint>
#include <limits>

#include "fast_exp.h"

namespace fedlora::model::internal {

// x[j] = exp(x[j] - max) for j < n, in place, max over those n entries; returns the sum of the
// new values and sets *max_out. A row of -inf gives NaN, as libtorch's softmax does.
__attribute__((always_inline)) inline float ExpMinusMaxInPlace(float* x, int64_t n,
                                                                float* max_out) {
  float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < n; ++j) mx = x[j] > mx ? x[j] : mx;
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) {
    x[j] = ExpForSimd(x[j] - mx);
    sum += x[j];
  }
  *max_out = mx;
  return sum;
}

}  // namespace fedlora::model::internal

#endif  // FEDLORA_MODEL_SRC_EXP_ROWS_H_
