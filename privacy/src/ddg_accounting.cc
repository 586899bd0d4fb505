#include "fedlora/privacy/ddg_accounting.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_format.h"
#include "ddg_rdp_internal.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/privacy/subsampling.h"

namespace fedlora::privacy {
namespace internal {

DdgSumRdpCurve::DdgSumRdpCurve(const DdgSumMechanism& m) {
  // The paper's Theorem 1 / Proposition 14 assume sigma >= 1/2 (and noise from n_min >= 1).
  valid_ = m.local_sigma2 >= 0.25 && std::isfinite(m.local_sigma2) && m.n_min >= 1 && m.dim >= 1 &&
           std::isfinite(m.dim) && m.l2_sensitivity >= 0 && std::isfinite(m.l2_sensitivity) &&
           m.l1_sensitivity >= 0 && std::isfinite(m.l1_sensitivity);
  if (!valid_) return;
  for (int k = 1; k < m.n_min; ++k) {
    tau_ += std::exp(-2 * M_PI * M_PI * m.local_sigma2 * k / (k + 1.0));
  }
  tau_ *= 10;
  const double sd = std::sqrt(static_cast<double>(m.n_min)) * std::sqrt(m.local_sigma2);
  l2_scale_ = m.l2_sensitivity / sd;
  l1_scale_ = m.l1_sensitivity / sd;
  dim_ = m.dim;
}

double DdgSumRdpCurve::operator()(double alpha) const {
  if (!valid_ || !(alpha > 1) || std::isinf(alpha)) return std::numeric_limits<double>::infinity();
  const double a = std::ceil(alpha);  // RDP is non-decreasing in the order
  const double t1 = a / 2 * l2_scale_ * l2_scale_ + tau_ * dim_;
  const double t2 = a / 2 * (l2_scale_ * l2_scale_ + 2 * l1_scale_ * tau_ + tau_ * tau_ * dim_);
  const double t3 = a / 2 * std::pow(l2_scale_ + std::sqrt(dim_) * tau_, 2);
  return std::min({t1, t2, t3});
}

}  // namespace internal

DdgSumMechanism DdgValueMechanism(const DdgParams& params) {
  const DdgConfig& c = params.config;
  DdgSumMechanism m;
  m.dim = static_cast<double>(params.padded_dim);
  m.l2_sensitivity = params.scaled_l2_bound;
  m.l1_sensitivity = m.l2_sensitivity * std::min(std::sqrt(m.dim), m.l2_sensitivity);
  m.local_sigma2 = params.local_sigma2_scaled;
  m.n_min = c.min_clients > 0 ? c.min_clients : c.expected_clients;
  return m;
}

DdgSumMechanism ReplaceOne(DdgSumMechanism m) {
  m.l2_sensitivity *= 2;
  m.l1_sensitivity *= 2;
  return m;
}

double DdgSumRdp(const DdgSumMechanism& m, double alpha) {
  return internal::DdgSumRdpCurve(m)(alpha);
}

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
  const internal::DdgSumRdpCurve eps(DdgValueMechanism(params));
  const IntegerRdpFn eps_int = [&eps](int a) { return eps(a); };
  std::vector<double> out;
  out.reserve(orders.size());
  for (double alpha : orders) {
    if (!(alpha > 1)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("privacy: RDP orders must be > 1, got %g", alpha));
    }
    const double a = std::ceil(alpha);
    if (q < 1 && a <= 100000) {
      out.push_back(PoissonSubsampledRdp(static_cast<int>(a), q, eps_int));
    } else {
      out.push_back(eps(alpha));  // also +inf for alpha = inf
    }
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
