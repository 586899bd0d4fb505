#include "fedlora/secagg/graph_parameters.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"

namespace fedlora::secagg {
namespace {

// Guards floor/ceil of rate * n against rounding in the insecure direction.
constexpr double kEps = 1e-12;

double LogChoose(double n, double k) {
  return std::lgamma(n + 1) - std::lgamma(k + 1) - std::lgamma(n - k + 1);
}

// Pr[X = x] for X ~ Hypergeometric(population, successes, draws), for x = 0..draws.
std::vector<double> HypergeometricPmf(int population, int successes, int draws) {
  std::vector<double> pmf(draws + 1, 0.0);
  const double denom = LogChoose(population, draws);
  for (int x = 0; x <= draws; ++x) {
    if (x > successes || draws - x > population - successes) continue;
    pmf[x] =
        std::exp(LogChoose(successes, x) + LogChoose(population - successes, draws - x) - denom);
  }
  return pmf;
}

// Union bound on the honest survivors of a random Harary graph being disconnected: it takes
// two separate runs of k/2 consecutive bad (corrupt or dropped) devices on the ring.
double LogProbDisconnected(int n, int k, int bad) {
  if (k > bad) return -HUGE_VAL;
  const double log_pairs = std::log(n) + std::log(n - k - 1) - std::log(2.0);
  return log_pairs + std::lgamma(bad + 1) + std::lgamma(n - k + 1) - std::lgamma(n + 1) -
         std::lgamma(bad - k + 1);
}

}  // namespace

absl::StatusOr<GraphParameters> ComputeKRegularParameters(uint32_t num_devices, double dropout_rate,
                                                          double corrupt_rate, double security_bits,
                                                          double correctness_bits) {
  const int n = static_cast<int>(num_devices);
  if (n < 4) return absl::InvalidArgumentError("secagg: k-regular graph needs n >= 4");
  if (dropout_rate < 0 || dropout_rate >= 1 || corrupt_rate < 0 || corrupt_rate >= 1 ||
      dropout_rate + corrupt_rate > 0.9) {
    return absl::InvalidArgumentError(absl::StrCat("secagg: dropout rate ", dropout_rate,
                                                   " and corrupt rate ", corrupt_rate,
                                                   " must be in [0, 1) with sum <= 0.9"));
  }
  const int corrupt = static_cast<int>(std::floor((corrupt_rate + kEps) * n));
  const int dropped = static_cast<int>(std::floor((dropout_rate + kEps) * n));
  const int survivors = static_cast<int>(std::ceil((1 - dropout_rate - kEps) * n));
  const double log_sec = -(security_bits + 1) * std::log(2.0);
  const double eps_sec = std::pow(2.0, -(security_bits + 1)) / n;
  const double eps_cor = std::pow(2.0, -correctness_bits) / n;
  for (int k = 2; k < n - 1; k += 2) {
    if (LogProbDisconnected(n, k, corrupt + dropped) >= log_sec) continue;
    // t1: smallest value with Pr[#corrupt neighbours > t1] <= eps_sec.
    const std::vector<double> adv = HypergeometricPmf(n, corrupt, k);
    int t1 = k;
    double tail = 0;
    for (int x = k; x >= 0; --x) {
      if (tail + adv[x] > eps_sec) {
        t1 = x;
        break;
      }
      tail += adv[x];
      t1 = x - 1;
    }
    if (t1 < 0) t1 = 0;
    // t2: largest t with Pr[#surviving neighbours < t] <= eps_cor.
    const std::vector<double> live = HypergeometricPmf(n, survivors, k);
    int t2 = 0;
    double below = 0;
    for (int t = 1; t <= k; ++t) {
      below += live[t - 1];
      if (below > eps_cor) break;
      t2 = t;
    }
    if (t2 > t1) {
      GraphParameters p;
      p.degree = static_cast<uint32_t>(k);
      p.threshold = static_cast<uint32_t>(std::max(t1 + 1, 2));
      return p;
    }
  }
  return absl::FailedPreconditionError(
      absl::StrCat("secagg: no k-regular degree below ", n - 1, " meets ", security_bits,
                   "-bit security and ", correctness_bits, "-bit correctness for n = ", n,
                   " (hint: small n or large rates; use --graph complete)"));
}

absl::StatusOr<uint32_t> CompleteGraphThreshold(uint32_t num_devices, double dropout_rate,
                                                double corrupt_rate) {
  const uint32_t t = num_devices / 2 + 1;
  const double survivors = (1 - dropout_rate) * num_devices;
  if (survivors + kEps < t) {
    return absl::InvalidArgumentError(absl::StrCat(
        "secagg: expected survivors ", survivors, " below the complete-graph threshold ", t,
        " (hint: lower the dropout rate or set the threshold explicitly)"));
  }
  if (corrupt_rate * num_devices + kEps >= t) {
    return absl::InvalidArgumentError("secagg: corrupt rate too high for any threshold");
  }
  return t;
}

}  // namespace fedlora::secagg
