#include "fedlora/privacy/ddg_accounting.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_format.h"
#include "fedlora/common/status_macros.h"
#include "log_math.h"

namespace fedlora::privacy {
namespace {

// Unsampled RDP of one round at order alpha (Proposition 14 of the paper).
struct DdgRoundRdp {
  double l2_scale, l1_scale, tau, dim;
  double operator()(double alpha) const {
    const double t1 = alpha / 2 * l2_scale * l2_scale + tau * dim;
    const double t2 = alpha / 2 * (l2_scale * l2_scale + 2 * l1_scale * tau + tau * tau * dim);
    const double t3 = alpha / 2 * std::pow(l2_scale + std::sqrt(dim) * tau, 2);
    return std::min({t1, t2, t3});
  }
};

// Zhu & Wang 2019 Theorem 5: Poisson-subsampled RDP at integer alpha >= 2.
double SubsampledRdp(int alpha, double q, const DdgRoundRdp& eps) {
  const double log_1mq = std::log1p(-q), log_q = std::log(q);
  double acc = (alpha - 1) * log_1mq + std::log(alpha * q - q + 1);
  acc = LogAdd(acc, eps(2) + LogComb(alpha, 2) + 2 * log_q + (alpha - 2) * log_1mq);
  for (int l = 3; l <= alpha; ++l) {
    acc = LogAdd(acc, std::log(3.0) + (l - 1) * eps(l) + LogComb(alpha, l) + (alpha - l) * log_1mq +
                          l * log_q);
  }
  return acc / (alpha - 1);
}

}  // namespace

absl::StatusOr<std::vector<double>> ComputeDdgRdp(const DdgParams& params, double q,
                                                  const std::vector<double>& orders) {
  if (!(q > 0 && q <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: sampling probability q must be in (0, 1], got %g", q));
  }
  if (!(params.local_sigma2_scaled > 0)) {
    return absl::InvalidArgumentError(
        "privacy: DDG configuration adds no noise (noise_multiplier 0): no privacy to account");
  }
  const DdgConfig& c = params.config;
  const double n_min = c.min_clients > 0 ? c.min_clients : c.expected_clients;
  const double sigma = std::sqrt(params.local_sigma2_scaled);
  const double dim = static_cast<double>(params.padded_dim);
  const double l2 = params.scaled_l2_bound;
  const double l1 = l2 * std::min(std::sqrt(dim), l2);
  double tau = 0;
  for (int k = 1; k < static_cast<int>(n_min); ++k) {
    tau += std::exp(-2 * M_PI * M_PI * params.local_sigma2_scaled * k / (k + 1.0));
  }
  tau *= 10;
  const DdgRoundRdp eps{l2 / (std::sqrt(n_min) * sigma), l1 / (std::sqrt(n_min) * sigma), tau, dim};
  std::vector<double> out;
  out.reserve(orders.size());
  for (double alpha : orders) {
    if (!(alpha > 1)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("privacy: RDP orders must be > 1, got %g", alpha));
    }
    if (std::isinf(alpha)) {
      out.push_back(std::numeric_limits<double>::infinity());
      continue;
    }
    const double a = std::ceil(alpha);  // RDP is non-decreasing in the order
    double r = eps(a);
    if (q < 1 && a <= 100000) r = std::min(r, SubsampledRdp(static_cast<int>(a), q, eps));
    out.push_back(r);
  }
  return out;
}

absl::StatusOr<EpsilonResult> ComputeDdgEpsilon(const DdgParams& params, double q, long long steps,
                                                double delta, const std::vector<double>& orders) {
  if (steps < 0) return absl::InvalidArgumentError("privacy: steps must be >= 0");
  const std::vector<double> grid = orders.empty() ? DefaultRdpOrders() : orders;
  FEDLORA_ASSIGN_OR_RETURN(std::vector<double> rdp, ComputeDdgRdp(params, q, grid));
  for (double& r : rdp) r *= static_cast<double>(steps);
  return RdpToEpsilon(grid, rdp, delta);
}

}  // namespace fedlora::privacy
