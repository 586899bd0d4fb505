// Internal log-space helpers shared by the RDP computations.
#ifndef FEDLORA_PRIVACY_SRC_LOG_MATH_H_
#define FEDLORA_PRIVACY_SRC_LOG_MATH_H_

#include <algorithm>
#include <cmath>
#include <limits>

namespace fedlora::privacy {

inline constexpr double kInf = std::numeric_limits<double>::infinity();

// log(exp(x) + exp(y)).
inline double LogAdd(double x, double y) {
  const double a = std::min(x, y), b = std::max(x, y);
  if (a == -kInf || b == kInf) return b;
  return std::log1p(std::exp(a - b)) + b;
}

// log(exp(x) - exp(y)) for x >= y; -inf when the difference is zero (or rounding makes x < y).
inline double LogSub(double x, double y) {
  if (y == -kInf) return x;
  if (x <= y) return -kInf;
  const double d = x - y;
  if (d > 700) return x;  // expm1 would overflow; exp(y) is negligible
  return std::log(std::expm1(d)) + y;
}

// log|C(n, k)| via lgamma (log|Gamma|), also for fractional n.
inline double LogComb(double n, double k) {
  return std::lgamma(n + 1) - std::lgamma(k + 1) - std::lgamma(n - k + 1);
}

// log(erfc(x)), accurate in the far tail where erfc underflows.
inline double LogErfc(double x) {
  if (x < 25) return std::log(std::erfc(x));
  // Laurent series at infinity: erfc(x) ~ exp(-x^2 - .5/x^2 + .625/x^4 ...) / (x sqrt(pi)).
  const double x2 = x * x;
  return -std::log(M_PI) / 2 - std::log(x) - x2 - 0.5 / x2 + 0.625 / (x2 * x2) -
         37.0 / 24.0 / (x2 * x2 * x2) + 353.0 / 64.0 / (x2 * x2 * x2 * x2);
}

}  // namespace fedlora::privacy

#endif  // FEDLORA_PRIVACY_SRC_LOG_MATH_H_
