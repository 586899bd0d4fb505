// The vectorizable exp the fused kernels use (model/src/fast_exp.h, internal to model/):
// within two ulp of exp over its whole range, exactly 0 below it (masked softmax entries),
// exactly 1 at 0, NaN kept.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "../../model/src/fast_exp.h"

namespace fedlora::model::internal {
namespace {

TEST(FastExpTest, WithinTwoUlpOfExpOverItsRange) {
  double worst = 0;
  float worst_at = 0;
  for (int i = 0; i <= 2000000; ++i) {
    const float x = -87.3f + (88.3f + 87.3f) * static_cast<float>(i) / 2000000.0f;
    const double want = std::exp(static_cast<double>(x));
    const double rel = std::abs(ExpForSimd(x) - want) / want;
    if (rel > worst) {
      worst = rel;
      worst_at = x;
    }
  }
  // float's ulp is 2^-23 (1.19e-7) relative at most.
  EXPECT_LT(worst, 2 * 1.1920929e-7) << "at x = " << worst_at;  // measured: 0.67 ulp
  EXPECT_EQ(ExpForSimd(0.0f), 1.0f);
}

TEST(FastExpTest, BelowTheRangeIsExactlyZeroAndNanStaysNan) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(ExpForSimd(-inf), 0.0f);
  EXPECT_EQ(ExpForSimd(-88.0f), 0.0f);
  EXPECT_EQ(ExpForSimd(-1e30f), 0.0f);
  EXPECT_TRUE(std::isnan(ExpForSimd(std::numeric_limits<float>::quiet_NaN())));
  // Above the range it stops at the largest value instead of inf (documented); still huge.
  EXPECT_TRUE(std::isfinite(ExpForSimd(inf)));
  EXPECT_GT(ExpForSimd(1000.0f), 1e38f);
}

}  // namespace
}  // namespace fedlora::model::internal
