#include "fedlora/privacy/round_accounting.h"

#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "ddg_rdp_internal.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/privacy/rdp.h"
#include "fedlora/privacy/subsampling.h"

namespace fedlora::privacy {
namespace {

// Above this integer order the O(alpha) amplification sums are skipped (unamplified charged).
constexpr double kMaxAmplifiedOrder = 100000;

absl::Status CheckDdg(const DdgSumMechanism& d, size_t i) {
  const auto bad = [i](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: DDG mechanism %d of the round: %s (hint: build it with DdgValueMechanism(params) "
        "or from the clipped-count codec's params)",
        i, what));
  };
  if (!(d.l2_sensitivity >= 0) || !std::isfinite(d.l2_sensitivity) || !(d.l1_sensitivity >= 0) ||
      !std::isfinite(d.l1_sensitivity)) {
    return bad(absl::StrFormat("sensitivities must be finite and >= 0, got L2 %g, L1 %g",
                               d.l2_sensitivity, d.l1_sensitivity));
  }
  if (!(d.local_sigma2 > 0) || !std::isfinite(d.local_sigma2)) {
    return bad(
        absl::StrFormat("local_sigma2 must be positive and finite, got %g (no noise: no "
                        "privacy to account)",
                        d.local_sigma2));
  }
  if (d.n_min < 1) return bad(absl::StrFormat("n_min must be >= 1, got %d", d.n_min));
  if (!(d.dim >= 1) || !std::isfinite(d.dim)) {
    return bad(absl::StrFormat("dim must be >= 1, got %g", d.dim));
  }
  return absl::OkStatus();
}

absl::Status CheckRound(const RoundMechanism& m, const std::vector<double>& orders) {
  if (!(m.q > 0 && m.q <= 1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: round sampling q must be in (0, 1], got %g (hint: Poisson: expected cohort / "
        "population; fixed size: cohort / population)",
        m.q));
  }
  if (m.gaussian_noise_multiplier.has_value() == !m.ddg.empty()) {
    return absl::InvalidArgumentError(
        "privacy: a round must set exactly one of gaussian_noise_multiplier (central DP) and ddg "
        "(distributed DP)");
  }
  if (m.gaussian_noise_multiplier.has_value()) {
    const double z = *m.gaussian_noise_multiplier;
    if (!(z > 0) || !std::isfinite(z)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "privacy: noise multiplier must be positive and finite, got %g (hint: noise stddev = "
          "noise_multiplier * clip norm)",
          z));
    }
  }
  for (size_t i = 0; i < m.ddg.size(); ++i) FEDLORA_RETURN_IF_ERROR(CheckDdg(m.ddg[i], i));
  for (double alpha : orders) {
    if (!(alpha > 1)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("privacy: RDP orders must be > 1, got %g", alpha));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<double>> ComputeRoundRdp(const RoundMechanism& m,
                                                    const std::vector<double>& orders) {
  FEDLORA_RETURN_IF_ERROR(CheckRound(m, orders));
  const bool fixed = m.sampling == Sampling::kFixedSize;
  if (m.gaussian_noise_multiplier.has_value()) {
    const double z = *m.gaussian_noise_multiplier;
    return fixed ? ComputeRdpSampleWorGaussian(m.q, z / 2, orders)
                 : ComputeRdpPoissonGaussian(m.q, z, orders);
  }
  std::vector<internal::DdgSumRdpCurve> curves;
  curves.reserve(m.ddg.size());
  for (const DdgSumMechanism& d : m.ddg) curves.emplace_back(fixed ? ReplaceOne(d) : d);
  // The releases of one round share the cohort: compose them, then amplify the composition.
  const auto composed_at = [&curves](double alpha) {
    double sum = 0;
    for (const auto& c : curves) sum += c(alpha);
    return sum;
  };
  const IntegerRdpFn composed = [&composed_at](int alpha) { return composed_at(alpha); };
  std::vector<double> rdp;
  rdp.reserve(orders.size());
  for (double alpha : orders) {
    const double a = std::ceil(alpha);  // RDP is non-decreasing in the order
    if (std::isinf(a)) {
      rdp.push_back(std::numeric_limits<double>::infinity());
    } else if (m.q == 1 || a > kMaxAmplifiedOrder) {
      rdp.push_back(composed_at(a));
    } else if (fixed) {
      rdp.push_back(WorSubsampledRdp(static_cast<int>(a), m.q, composed));
    } else {
      rdp.push_back(PoissonSubsampledRdp(static_cast<int>(a), m.q, composed));
    }
  }
  return rdp;
}

std::string DescribeAccounting(const RoundMechanism& m) {
  if (m.sampling == Sampling::kFixedSize) {
    return absl::StrFormat(
        "replace one user (population size public); fixed-size cohort sampled without "
        "replacement, q = %g",
        m.q);
  }
  return absl::StrFormat("add/remove one user; Poisson sampling, q = %g", m.q);
}

}  // namespace fedlora::privacy
