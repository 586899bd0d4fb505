// Renyi-DP accounting for the Poisson-subsampled Gaussian mechanism.
//
// The computations replicate dp_accounting (>= 0.4.4) `rdp_privacy_accountant.py` (Mironov, Talwar,
// Zhang 2019, "Renyi Differential Privacy of the Sampled Gaussian Mechanism"): integer orders
// use the binomial expansion of A_alpha, fractional orders the two-sided erfc series. RDP is
// converted to (epsilon, delta) with the bound of Canonne-Kamath-Steinke 2020 (Prop. 12) /
// Asoodeh et al. 2020, which is what TensorFlow Privacy and dp_accounting use today.
//
// In fedlora the protected unit is a user (everything one device contributes in a round), so
// `q` is the probability that a device is sampled into a round and a "step" is one round.
#ifndef FEDLORA_PRIVACY_RDP_H_
#define FEDLORA_PRIVACY_RDP_H_

#include <vector>

#include "absl/status/statusor.h"

namespace fedlora::privacy {

// dp_accounting's default order grid for DP-SGD style analyses:
// [1 + x/10 for x in 1..99] + [11..63] + [128, 256, 512] (155 orders).
std::vector<double> DefaultRdpOrders();

// RDP of one Poisson-subsampled Gaussian step at each of `orders` (all > 1; infinity allowed and
// gives infinity). `q` in [0, 1] is the sampling probability (0 gives 0), `noise_multiplier` > 0
// is the noise stddev divided by the L2 sensitivity.
// Fails with INVALID_ARGUMENT if q is outside [0, 1], noise_multiplier <= 0 or not finite, or an
// order is NaN or <= 1.
absl::StatusOr<std::vector<double>> ComputeRdpPoissonGaussian(double q, double noise_multiplier,
                                                              const std::vector<double>& orders);

// An (epsilon, delta) statement and the RDP order that achieved it.
struct EpsilonResult {
  double epsilon = 0;
  double order = 0;
};

// Converts accumulated RDP values `rdp[i]` at `orders[i]` into the smallest epsilon for `delta`
// in (0, 1), using the improved conversion (CKS 2020 Prop. 12), with the KL-divergence shortcut
// that gives epsilon 0 when delta^2 + expm1(-rdp) > 0. Epsilon may be +infinity.
// Fails with INVALID_ARGUMENT for mismatched lengths, an empty grid, an order < 1, a negative or
// NaN RDP value, or delta outside (0, 1).
absl::StatusOr<EpsilonResult> RdpToEpsilon(const std::vector<double>& orders,
                                           const std::vector<double>& rdp, double delta);

// The reverse conversion: the smallest delta (capped at 1) at which the RDP curve gives
// `epsilon` >= 0. Fails with INVALID_ARGUMENT like RdpToEpsilon.
absl::StatusOr<double> RdpToDelta(const std::vector<double>& orders, const std::vector<double>& rdp,
                                  double epsilon);

// Parameters of a run of `steps` Poisson-subsampled Gaussian rounds.
struct DpSgdQuery {
  double q = 0;                 // sampling probability in (0, 1]
  double noise_multiplier = 0;  // > 0 (for ComputeEpsilon)
  long long steps = 0;          // >= 0 rounds
  double delta = 0;             // in (0, 1)
};

// Epsilon after `query.steps` compositions, over `orders` (default grid when empty).
// Fails with INVALID_ARGUMENT (with a hint) for q outside (0, 1], noise <= 0, negative steps or
// delta outside (0, 1).
absl::StatusOr<EpsilonResult> ComputeEpsilon(const DpSgdQuery& query,
                                             const std::vector<double>& orders = {});

// The smallest noise multiplier (to relative precision 1e-6) whose epsilon after
// `query.steps` rounds is <= `target_epsilon`; `query.noise_multiplier` is ignored.
// Fails with INVALID_ARGUMENT for bad q/steps/delta or target_epsilon <= 0, and with
// OUT_OF_RANGE if even a noise multiplier of 1e6 cannot reach the target.
absl::StatusOr<double> ComputeNoiseMultiplier(const DpSgdQuery& query, double target_epsilon,
                                              const std::vector<double>& orders = {});

// Accumulates RDP over heterogeneous rounds (composition is addition per order).
class RdpAccountant {
 public:
  // Uses `orders` (DefaultRdpOrders() when empty).
  explicit RdpAccountant(std::vector<double> orders = {});

  // Adds `count` rounds of the Poisson-subsampled Gaussian. Fails like
  // ComputeRdpPoissonGaussian; count < 0 is INVALID_ARGUMENT. The state is unchanged on error.
  absl::Status ComposePoissonGaussian(double q, double noise_multiplier, long long count = 1);

  // Adds an arbitrary RDP curve (same length as orders()), e.g. from the distributed discrete
  // Gaussian accounting. Fails with INVALID_ARGUMENT on a length mismatch or negative/NaN entry.
  absl::Status ComposeRdp(const std::vector<double>& rdp, long long count = 1);

  // Epsilon for `delta`; fails like RdpToEpsilon.
  absl::StatusOr<EpsilonResult> GetEpsilon(double delta) const;

  const std::vector<double>& orders() const { return orders_; }
  const std::vector<double>& rdp() const { return rdp_; }

 private:
  std::vector<double> orders_;
  std::vector<double> rdp_;
};

}  // namespace fedlora::privacy

#endif  // FEDLORA_PRIVACY_RDP_H_
