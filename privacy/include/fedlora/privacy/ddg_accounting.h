// Privacy accounting for the distributed discrete Gaussian (Kairouz, Liu, Steinke 2021).
//
// Per round, the sum of n_min devices' discrete Gaussians (each sigma^2 in the scaled domain)
// is close to one discrete Gaussian of variance n_min sigma^2; the paper's Proposition 14 /
// Theorem 1 gives the RDP of one round at order alpha as
//   min( alpha/2 D2^2 + tau d,
//        alpha/2 (D2^2 + 2 D1 tau + tau^2 d),
//        alpha/2 (D2 + sqrt(d) tau)^2 ),
// with D2 = (inflated L2 sensitivity after rounding) / (sqrt(n_min) sigma),
// D1 = min(sqrt(d) L2, L2^2) / (sqrt(n_min) sigma) (rounded vectors are integral),
// tau = 10 sum_{k=1}^{n_min-1} exp(-2 pi^2 sigma^2 k/(k+1)), d = padded dimension.
// Poisson subsampling with rate q < 1 uses Zhu & Wang 2019 Theorem 5 at integer orders
// (and the plain bound when smaller), exactly like the authors' reference accounting code.
// Fractional orders are charged the value at ceil(alpha), a valid upper bound because RDP is
// non-decreasing in the order; so any order grid (e.g. DefaultRdpOrders()) can be used.
#ifndef FEDLORA_PRIVACY_DDG_ACCOUNTING_H_
#define FEDLORA_PRIVACY_DDG_ACCOUNTING_H_

#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/privacy/ddg_codec.h"
#include "fedlora/privacy/rdp.h"

namespace fedlora::privacy {

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
