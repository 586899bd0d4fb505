// Privacy accounting for the distributed discrete Gaussian (Kairouz, Liu, Steinke 2021).
//
// Per round, the sum of n_min devices' discrete Gaussians (each N_Z(0, sigma^2) in the scaled
// integer domain) is close to one discrete Gaussian of variance n_min sigma^2; the paper's
// Proposition 14 / Theorem 1 gives the RDP of one release at order alpha as
//   min( alpha/2 D2^2 + tau d,
//        alpha/2 (D2^2 + 2 D1 tau + tau^2 d),
//        alpha/2 (D2 + sqrt(d) tau)^2 ),
// with D2 = L2 sensitivity / (sqrt(n_min) sigma), D1 = L1 sensitivity / (sqrt(n_min) sigma),
// tau = 10 sum_{k=1}^{n_min-1} exp(-2 pi^2 sigma^2 k/(k+1)), d = dimension. For a DdgCodec round
// the L2 sensitivity is the inflated bound after rounding and L1 = min(sqrt(d) L2, L2^2) (rounded
// vectors are integral). The theorem assumes sigma >= 1/2; below that the RDP is charged as +inf.
// Poisson subsampling with rate q < 1 uses Zhu & Wang 2019 Theorem 5 at integer orders (and the
// plain bound when smaller), exactly like the authors' reference accounting code
// (google-research/federated distributed_dp/accounting_utils.py).
// Fractional orders are charged the value at ceil(alpha), a valid upper bound because RDP is
// non-decreasing in the order; so any order grid (e.g. DefaultRdpOrders()) can be used.
// For whole rounds (adaptive-clipping count, fixed-size cohorts) see round_accounting.h.
#ifndef FEDLORA_PRIVACY_DDG_ACCOUNTING_H_
#define FEDLORA_PRIVACY_DDG_ACCOUNTING_H_

#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/privacy/ddg_codec.h"
#include "fedlora/privacy/rdp.h"

namespace fedlora::privacy {

// The sum of n_min devices' discrete Gaussians (each variance local_sigma2, scaled integer
// domain) added to integer vectors of dimension dim whose sum moves by at most l2_sensitivity /
// l1_sensitivity between neighbours: what the paper's Proposition 14 bounds.
struct DdgSumMechanism {
  double l2_sensitivity = 0;
  double l1_sensitivity = 0;
  double local_sigma2 = 0;
  int n_min = 0;
  double dim = 1;
};

// The value mechanism of a DdgCodec round with add/remove-one sensitivities: L2 =
// params.scaled_l2_bound, L1 = L2 min(sqrt(padded_dim), L2), sigma^2 = local_sigma2_scaled,
// n_min = min_clients (expected_clients when 0), dim = padded_dim.
DdgSumMechanism DdgValueMechanism(const DdgParams& params);

// The same mechanism under replace-one neighbours: both sensitivities doubled (x' - x has norm
// up to twice the bound).
DdgSumMechanism ReplaceOne(DdgSumMechanism m);

// Unsampled RDP at order alpha > 1 (fractional orders charged at ceil(alpha)): Proposition 14's
// three-term min with tau = 10 sum_{k=1}^{n_min-1} exp(-2 pi^2 sigma^2 k/(k+1)). Returns +inf
// for alpha = inf, local_sigma2 < 1/4 (outside the theorem, including no noise), n_min < 1,
// alpha <= 1 or NaN inputs: never an under-charge.
double DdgSumRdp(const DdgSumMechanism& m, double alpha);

// RDP of one round of the DDG mechanism described by `params` (min_clients devices survive),
// with device sampling probability q in (0, 1], at each order (> 1).
// Fails with INVALID_ARGUMENT for q outside (0, 1], zero noise, or an order <= 1.
absl::StatusOr<std::vector<double>> ComputeDdgRdp(const DdgParams& params, double q,
                                                  const std::vector<double>& orders);

// Epsilon after `steps` DDG rounds at sampling rate q for `delta`; orders default to
// DefaultRdpOrders(). Fails like ComputeDdgRdp and RdpToEpsilon.
absl::StatusOr<EpsilonResult> ComputeDdgEpsilon(const DdgParams& params, double q, long long steps,
                                                double delta,
                                                const std::vector<double>& orders = {});

}  // namespace fedlora::privacy

#endif  // FEDLORA_PRIVACY_DDG_ACCOUNTING_H_
