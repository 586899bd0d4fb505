#include "noise_search.h"

#include "absl/strings/str_format.h"
#include "fedlora/common/status_macros.h"

namespace fedlora::privacy::internal {

absl::StatusOr<double> SmallestNoiseFor(
    const std::function<absl::StatusOr<double>(double noise)>& epsilon_at, double target_epsilon,
    const std::string& what) {
  // Bracket: eps(hi) <= target < eps(lo). Epsilon decreases with the noise.
  double hi = 1.0;
  FEDLORA_ASSIGN_OR_RETURN(double eps_hi, epsilon_at(hi));
  while (eps_hi > target_epsilon) {
    hi *= 2;
    if (hi > 1e6) {
      return absl::OutOfRangeError(absl::StrFormat(
          "privacy: no noise multiplier <= 1e6 reaches epsilon %g with %s (hint: raise the "
          "epsilon budget or lower q/steps)",
          target_epsilon, what));
    }
    FEDLORA_ASSIGN_OR_RETURN(eps_hi, epsilon_at(hi));
  }
  double lo = hi / 2;
  FEDLORA_ASSIGN_OR_RETURN(double eps_lo, epsilon_at(lo));
  while (eps_lo <= target_epsilon) {
    hi = lo;
    lo /= 2;
    if (lo < 1e-6) return hi;
    FEDLORA_ASSIGN_OR_RETURN(eps_lo, epsilon_at(lo));
  }
  while (hi - lo > 1e-7 * hi) {
    const double mid = 0.5 * (lo + hi);
    FEDLORA_ASSIGN_OR_RETURN(double eps_mid, epsilon_at(mid));
    (eps_mid <= target_epsilon ? hi : lo) = mid;
  }
  return hi;
}

}  // namespace fedlora::privacy::internal
