#include "fedlora/privacy/rdp.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "fedlora/common/status_macros.h"
#include "log_math.h"
#include "noise_search.h"

namespace fedlora::privacy {
namespace {

// log(A_alpha) for integer alpha and 0 < q < 1 (binomial expansion).
double ComputeLogAInt(double q, double sigma, int alpha) {
  double log_a = -kInf;
  const double log_q = std::log(q), log_1mq = std::log1p(-q);
  for (int i = 0; i <= alpha; ++i) {
    const double log_coef = LogComb(alpha, i) + i * log_q + (alpha - i) * log_1mq;
    const double s = log_coef + (static_cast<double>(i) * i - i) / (2 * sigma * sigma);
    log_a = LogAdd(log_a, s);
  }
  return log_a;
}

// log(A_alpha) for fractional alpha and 0 < q < 1: the integrals over (-inf, z0] and
// [z0, inf) expanded as series. As in dp_accounting >= 0.4.4 every term is added with the
// absolute value of the generalized binomial coefficient (log|C(alpha, i)| via lgamma), which
// upper-bounds A_alpha and avoids catastrophic cancellation.
double ComputeLogAFrac(double q, double sigma, double alpha) {
  double log_a0 = -kInf, log_a1 = -kInf;
  const double z0 = sigma * sigma * std::log(1 / q - 1) + 0.5;
  const double log_q = std::log(q), log_1mq = std::log1p(-q);
  for (int i = 0; i < 1000000; ++i) {
    const double log_coef = LogComb(alpha, i);
    const double j = alpha - i;
    const double log_t0 = log_coef + i * log_q + j * log_1mq;
    const double log_t1 = log_coef + j * log_q + i * log_1mq;
    const double log_e0 = std::log(0.5) + LogErfc((i - z0) / (std::sqrt(2.0) * sigma));
    const double log_e1 = std::log(0.5) + LogErfc((z0 - j) / (std::sqrt(2.0) * sigma));
    const double log_s0 = log_t0 + (static_cast<double>(i) * i - i) / (2 * sigma * sigma) + log_e0;
    const double log_s1 = log_t1 + (j * j - j) / (2 * sigma * sigma) + log_e1;
    log_a0 = LogAdd(log_a0, log_s0);
    log_a1 = LogAdd(log_a1, log_s1);
    if (std::max(log_s0, log_s1) < -30) break;
  }
  return LogAdd(log_a0, log_a1);
}

absl::Status CheckDelta(double delta) {
  if (!(delta > 0 && delta < 1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: delta must be in (0, 1), got %g (hint: a typical choice is 1/num_users^1.1)",
        delta));
  }
  return absl::OkStatus();
}

absl::Status CheckQuery(const DpSgdQuery& query) {
  if (!(query.q > 0 && query.q <= 1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: sampling probability q must be in (0, 1], got %g (hint: q = expected devices "
        "per round / population size)",
        query.q));
  }
  if (query.steps < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: steps must be >= 0, got %d", query.steps));
  }
  return CheckDelta(query.delta);
}

absl::Status CheckCurve(const std::vector<double>& orders, const std::vector<double>& rdp) {
  if (orders.size() != rdp.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: %d RDP orders but %d RDP values (hint: use the accountant's own order grid)",
        orders.size(), rdp.size()));
  }
  if (orders.empty()) return absl::InvalidArgumentError("privacy: empty RDP order grid");
  for (size_t i = 0; i < orders.size(); ++i) {
    if (!(orders[i] >= 1)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("privacy: Renyi order must be >= 1, got %g", orders[i]));
    }
    if (!(rdp[i] >= 0)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("privacy: RDP value at order %g is %g; must be >= 0", orders[i], rdp[i]));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<double> DefaultRdpOrders() {
  std::vector<double> orders;
  for (int x = 1; x < 100; ++x) orders.push_back(1 + x / 10.0);
  for (int x = 11; x < 64; ++x) orders.push_back(x);
  for (double x : {128.0, 256.0, 512.0}) orders.push_back(x);
  return orders;
}

absl::StatusOr<std::vector<double>> ComputeRdpPoissonGaussian(double q, double noise_multiplier,
                                                              const std::vector<double>& orders) {
  if (!(q >= 0 && q <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: sampling probability q must be in [0, 1], got %g", q));
  }
  if (!(noise_multiplier > 0) || !std::isfinite(noise_multiplier)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: noise multiplier must be positive and finite, got %g (hint: noise stddev = "
        "noise_multiplier * clip norm)",
        noise_multiplier));
  }
  std::vector<double> rdp;
  rdp.reserve(orders.size());
  for (double alpha : orders) {
    if (!(alpha > 1)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("privacy: RDP orders must be > 1, got %g", alpha));
    }
    if (std::isinf(alpha)) {
      rdp.push_back(kInf);
    } else if (q == 0) {
      rdp.push_back(0);
    } else if (q == 1) {
      rdp.push_back(alpha / (2 * noise_multiplier * noise_multiplier));
    } else if (alpha == std::floor(alpha) && alpha < 1e6) {
      rdp.push_back(ComputeLogAInt(q, noise_multiplier, static_cast<int>(alpha)) / (alpha - 1));
    } else {
      rdp.push_back(ComputeLogAFrac(q, noise_multiplier, alpha) / (alpha - 1));
    }
  }
  return rdp;
}

absl::StatusOr<EpsilonResult> RdpToEpsilon(const std::vector<double>& orders,
                                           const std::vector<double>& rdp, double delta) {
  FEDLORA_RETURN_IF_ERROR(CheckDelta(delta));
  FEDLORA_RETURN_IF_ERROR(CheckCurve(orders, rdp));
  EpsilonResult best{kInf, orders[0]};
  bool have = false;
  for (size_t i = 0; i < orders.size(); ++i) {
    const double a = orders[i], r = rdp[i];
    double eps;
    if (delta * delta + std::expm1(-r) > 0) {
      eps = 0;  // bounded via the KL divergence: delta <= sqrt(1 - exp(-KL))
    } else if (a > 1.01) {
      eps = r + std::log1p(-1 / a) - std::log(delta * a) / (a - 1);
    } else {
      eps = kInf;
    }
    if (!have || eps < best.epsilon) best = {eps, a};  // first minimum, like np.argmin
    have = true;
  }
  best.epsilon = std::max(0.0, best.epsilon);
  return best;
}

absl::StatusOr<double> RdpToDelta(const std::vector<double>& orders, const std::vector<double>& rdp,
                                  double epsilon) {
  if (!(epsilon >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: epsilon must be >= 0, got %g", epsilon));
  }
  FEDLORA_RETURN_IF_ERROR(CheckCurve(orders, rdp));
  double best_log_delta = kInf;
  for (size_t i = 0; i < orders.size(); ++i) {
    const double a = orders[i], r = rdp[i];
    double log_delta = (r == 0) ? -kInf : 0.5 * std::log1p(-std::exp(-r));
    if (a > 1.01) {
      const double rdp_bound = (a - 1) * (r - epsilon + std::log1p(-1 / a)) - std::log(a);
      log_delta = std::min(log_delta, rdp_bound);
    }
    best_log_delta = std::min(best_log_delta, log_delta);
  }
  return std::min(std::exp(best_log_delta), 1.0);
}

absl::StatusOr<EpsilonResult> ComputeEpsilon(const DpSgdQuery& query,
                                             const std::vector<double>& orders) {
  FEDLORA_RETURN_IF_ERROR(CheckQuery(query));
  const std::vector<double> grid = orders.empty() ? DefaultRdpOrders() : orders;
  FEDLORA_ASSIGN_OR_RETURN(std::vector<double> rdp,
                           ComputeRdpPoissonGaussian(query.q, query.noise_multiplier, grid));
  for (double& r : rdp) r *= static_cast<double>(query.steps);
  return RdpToEpsilon(grid, rdp, query.delta);
}

absl::StatusOr<double> ComputeNoiseMultiplier(const DpSgdQuery& query, double target_epsilon,
                                              const std::vector<double>& orders) {
  FEDLORA_RETURN_IF_ERROR(CheckQuery(query));
  if (!(target_epsilon > 0) || !std::isfinite(target_epsilon)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: target epsilon must be positive and finite, got %g", target_epsilon));
  }
  const std::vector<double> grid = orders.empty() ? DefaultRdpOrders() : orders;
  auto eps_at = [&](double noise) -> absl::StatusOr<double> {
    DpSgdQuery q = query;
    q.noise_multiplier = noise;
    FEDLORA_ASSIGN_OR_RETURN(EpsilonResult r, ComputeEpsilon(q, grid));
    return r.epsilon;
  };
  if (query.steps == 0) return 0.0;  // nothing released: any positive noise works
  return internal::SmallestNoiseFor(
      eps_at, target_epsilon,
      absl::StrFormat("q=%g, %d steps, delta=%g", query.q, query.steps, query.delta));
}

RdpAccountant::RdpAccountant(std::vector<double> orders)
    : orders_(orders.empty() ? DefaultRdpOrders() : std::move(orders)), rdp_(orders_.size(), 0.0) {}

absl::Status RdpAccountant::ComposePoissonGaussian(double q, double noise_multiplier,
                                                   long long count) {
  if (count < 0) return absl::InvalidArgumentError("privacy: composition count must be >= 0");
  FEDLORA_ASSIGN_OR_RETURN(std::vector<double> rdp,
                           ComputeRdpPoissonGaussian(q, noise_multiplier, orders_));
  return ComposeRdp(rdp, count);
}

absl::Status RdpAccountant::ComposeRdp(const std::vector<double>& rdp, long long count) {
  if (count < 0) return absl::InvalidArgumentError("privacy: composition count must be >= 0");
  FEDLORA_RETURN_IF_ERROR(CheckCurve(orders_, rdp));
  for (size_t i = 0; i < rdp.size(); ++i) rdp_[i] += static_cast<double>(count) * rdp[i];
  return absl::OkStatus();
}

absl::StatusOr<EpsilonResult> RdpAccountant::GetEpsilon(double delta) const {
  return RdpToEpsilon(orders_, rdp_, delta);
}

}  // namespace fedlora::privacy
