#include "fedlora/privacy/subsampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "log_math.h"

namespace fedlora::privacy {
namespace {

// Integer orders up to this use WBK Theorem 27's forward differences (as dp_accounting).
constexpr int kMaxForwardDiffOrder = 256;

// (sign, log|exp(x) - exp(y)|), as dp_accounting's _log_sub_sign.
std::pair<bool, double> LogSubSign(double x, double y) {
  if (x > y) return {true, x + std::log1p(-std::exp(y - x))};
  if (x < y) return {false, y + std::log1p(-std::exp(x - y))};
  return {true, -kInf};
}

// log|k-th forward difference| at 0 of the sequence s_m = exp(cgf(m - 1)), m >= 0, for
// k = 1 .. n + 2 (entry k - 1), cgf(x) = x (x + 1) / (2 sigma^2): dp_accounting's
// _get_forward_diffs(cgf, n) with the same in-place log-space recurrence (so the same rounding).
// Entry k only depends on s_0 .. s_k, so one call serves every order <= n.
std::vector<double> LogForwardDiffs(double sigma, int n) {
  const auto cgf = [sigma](double x) { return x * (x + 1) / (2 * sigma * sigma); };
  std::vector<double> v(n + 3, 0.0);  // log|s_m|; s_0 = 1
  std::vector<char> positive(n + 3, 1);
  for (int i = 1; i < n + 3; ++i) v[i] = cgf(i - 1.0);
  std::vector<double> deltas(n + 2);
  for (int i = 0; i < n + 2; ++i) {
    for (int j = 0; j < n + 2 - i; ++j) {
      if (positive[j] == positive[j + 1]) {
        auto [sign, mag] = LogSubSign(v[j + 1], v[j]);
        positive[j] = positive[j + 1] ? sign : !sign;
        v[j] = mag;
      } else {
        v[j] = LogAdd(v[j], v[j + 1]);
        positive[j] = positive[j + 1];
      }
    }
    deltas[i] = v[0];
  }
  return deltas;
}

// log A_alpha of WBK Theorem 27 for the Gaussian with noise multiplier sigma (replace-one) at
// integer alpha >= 2; `deltas` from LogForwardDiffs(sigma, n >= alpha) when alpha <= 256.
// dp_accounting's _compute_rdp_sample_wor_gaussian_int.
double LogMomentWorGaussian(double q, double sigma, int alpha, const std::vector<double>& deltas) {
  const auto cgf = [sigma](double x) { return x * (x + 1) / (2 * sigma * sigma); };
  const double eps2 = 2 / (2 * sigma * sigma);
  const double log_f2m1 = eps2 + std::log1p(-std::exp(-eps2));  // log(e^eps(2) - 1)
  const double log_q = std::log(q);
  double log_a = 0;
  for (int i = 2; i <= alpha; ++i) {
    double s;
    if (i == 2) {
      s = 2 * log_q + LogComb(alpha, 2) + std::min(std::log(4.0) + log_f2m1, eps2 + std::log(2.0));
    } else if (alpha <= kMaxForwardDiffOrder) {
      const double lo = deltas[2 * (i / 2) - 1], hi = deltas[2 * ((i + 1) / 2) - 1];
      s = std::min(std::log(4.0) + 0.5 * (lo + hi), std::log(2.0) + cgf(i - 1.0));
      s += i * log_q + LogComb(alpha, i);
    } else {
      s = std::log(2.0) + cgf(i - 1.0) + i * log_q + LogComb(alpha, i);
    }
    log_a = LogAdd(log_a, s);
  }
  return log_a;
}

}  // namespace

double PoissonSubsampledRdp(int alpha, double q, const IntegerRdpFn& eps) {
  if (alpha < 2 || !(q > 0 && q <= 1)) return kInf;
  const double unsampled = eps(alpha);
  if (q == 1) return unsampled;
  const double log_1mq = std::log1p(-q), log_q = std::log(q);
  double acc = (alpha - 1) * log_1mq + std::log(alpha * q - q + 1);
  acc = LogAdd(acc, eps(2) + LogComb(alpha, 2) + 2 * log_q + (alpha - 2) * log_1mq);
  for (int l = 3; l <= alpha && acc < kInf; ++l) {
    acc = LogAdd(acc, std::log(3.0) + (l - 1) * eps(l) + LogComb(alpha, l) + (alpha - l) * log_1mq +
                          l * log_q);
  }
  return std::min(acc / (alpha - 1), unsampled);
}

double WorSubsampledRdp(int alpha, double q, const IntegerRdpFn& eps) {
  if (alpha < 2 || !(q > 0 && q <= 1)) return kInf;
  const double unsampled = eps(alpha);
  if (q == 1) return unsampled;
  const double log_q = std::log(q), eps2 = eps(2);
  const double log_f2m1 = eps2 + std::log1p(-std::exp(-eps2));  // log(e^eps(2) - 1)
  double acc = 0;                                               // log 1
  acc = LogAdd(acc, 2 * log_q + LogComb(alpha, 2) +
                        std::min(std::log(4.0) + log_f2m1, std::log(2.0) + eps2));
  for (int j = 3; j <= alpha && acc < kInf; ++j) {
    acc = LogAdd(acc, std::log(2.0) + (j - 1) * eps(j) + j * log_q + LogComb(alpha, j));
  }
  return std::min(acc / (alpha - 1), unsampled);
}

absl::StatusOr<std::vector<double>> ComputeRdpSampleWorGaussian(double q, double noise_multiplier,
                                                                const std::vector<double>& orders) {
  if (!(q >= 0 && q <= 1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: sampling ratio q must be in [0, 1], got %g (hint: q = cohort size / population "
        "size)",
        q));
  }
  if (!(noise_multiplier > 0) || !std::isfinite(noise_multiplier)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: noise multiplier must be positive and finite, got %g (hint: relative to the "
        "replace-one sensitivity, i.e. z / 2 for noise z * clip on a sum of clipped updates)",
        noise_multiplier));
  }
  int max_int_order = 1;  // largest integer order (<= 256) whose forward differences we need
  for (double alpha : orders) {
    if (!(alpha > 1)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("privacy: RDP orders must be > 1, got %g", alpha));
    }
    if (std::isfinite(alpha)) {
      max_int_order =
          std::max(max_int_order,
                   static_cast<int>(std::min<double>(std::ceil(alpha), kMaxForwardDiffOrder)));
    }
  }
  const double sigma = noise_multiplier;
  std::vector<double> deltas;
  if (q > 0 && q < 1) deltas = LogForwardDiffs(sigma, max_int_order);
  auto log_moment = [&](int a) { return a <= 1 ? 0.0 : LogMomentWorGaussian(q, sigma, a, deltas); };
  std::vector<double> rdp;
  rdp.reserve(orders.size());
  for (double alpha : orders) {
    const double unsampled = alpha / (2 * sigma * sigma);
    if (std::isinf(alpha)) {
      rdp.push_back(kInf);
    } else if (q == 0) {
      rdp.push_back(0);
    } else if (q == 1 || alpha > 1e6) {
      rdp.push_back(unsampled);  // O(alpha) sum not worth it: the cap is a valid bound
    } else if (alpha == std::floor(alpha)) {
      rdp.push_back(std::min(log_moment(static_cast<int>(alpha)) / (alpha - 1), unsampled));
    } else {
      const double lo = std::floor(alpha), t = alpha - lo;
      const double x = log_moment(static_cast<int>(lo)), y = log_moment(static_cast<int>(lo) + 1);
      rdp.push_back(std::min(((1 - t) * x + t * y) / (alpha - 1), unsampled));
    }
  }
  return rdp;
}

}  // namespace fedlora::privacy
