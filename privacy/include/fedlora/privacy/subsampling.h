// Privacy amplification by subsampling for Renyi DP.
//
// Two ways of choosing a round's cohort, each with its own neighbouring relation:
//  * Poisson sampling (each user joins independently with probability q): add/remove-one
//    neighbours. General bound: Zhu & Wang 2019 ("Poisson subsampled Renyi differential
//    privacy", ICML), Theorem 5. For the Gaussian use ComputeRdpPoissonGaussian (rdp.h, tight).
//  * A fixed-size cohort of m = q n users drawn without replacement from a population of n
//    (n public): replace-one neighbours. General bound: Wang, Balle, Kasiviswanathan 2019
//    ("Subsampled Renyi differential privacy and analytical moments accountant", AISTATS),
//    Theorem 9; for the Gaussian their Theorem 27 (tighter), as dp_accounting implements it.
//
// The general bounds take the base mechanism's RDP curve at integer orders as a function and
// are evaluated at integer orders alpha >= 2 (cost O(alpha) evaluations of the curve).
#ifndef FEDLORA_PRIVACY_SUBSAMPLING_H_
#define FEDLORA_PRIVACY_SUBSAMPLING_H_

#include <functional>
#include <vector>

#include "absl/status/statusor.h"

namespace fedlora::privacy {

// Unsampled RDP of a mechanism at an integer order alpha >= 2 (may be +inf).
using IntegerRdpFn = std::function<double(int alpha)>;

// RDP at integer order alpha >= 2 of the mechanism `eps` (add/remove-one neighbours) run on a
// Poisson sample with probability q in (0, 1]: min(Zhu & Wang 2019 Theorem 5, eps(alpha)).
// q == 1 returns eps(alpha). Outside the domain (alpha < 2, q not in (0, 1]) returns +inf, never
// an under-charge.
double PoissonSubsampledRdp(int alpha, double q, const IntegerRdpFn& eps);

// RDP at integer order alpha >= 2 of the mechanism `eps` run on a fixed-size subset sampled
// without replacement with ratio q = m/n in (0, 1], replace-one neighbours (n public); `eps` must
// be the base mechanism's RDP under replace-one. Wang-Balle-Kasiviswanathan 2019 Theorem 9 with
// eps(inf) = inf (so its min{2, ...} factors are 2):
//   (1/(alpha-1)) log(1 + q^2 C(alpha,2) min{4 (e^eps(2) - 1), 2 e^eps(2)}
//                       + sum_{j=3}^{alpha} 2 q^j C(alpha,j) e^{(j-1) eps(j)}),
// capped at eps(alpha). q == 1 returns eps(alpha). Outside the domain returns +inf.
double WorSubsampledRdp(int alpha, double q, const IntegerRdpFn& eps);

// RDP of the Gaussian mechanism on a fixed-size subset sampled without replacement (ratio q in
// [0, 1], replace-one neighbours), at each of `orders`: dp_accounting's
// _compute_rdp_sample_wor_gaussian (WBK 2019, arXiv 1808.00087 Theorem 27 with forward
// differences of exp((a-1) a / (2 z^2)) for integer orders <= 256, the cruder Theorem 9 sum
// above; fractional orders interpolate the integer neighbours' log-moments linearly, WBK
// Corollary 10). Additionally capped at the unsampled alpha / (2 z^2) (subsampling under
// replace-one never costs more than the base mechanism), which only binds for q close to 1.
// `noise_multiplier` is relative to the replace-one sensitivity: for a sum of updates clipped to
// C with noise stddev z C pass z / 2. Infinite orders give infinity, q == 0 gives 0.
// Fails with INVALID_ARGUMENT like ComputeRdpPoissonGaussian (q outside [0, 1], noise <= 0 or not
// finite, an order NaN or <= 1).
absl::StatusOr<std::vector<double>> ComputeRdpSampleWorGaussian(double q, double noise_multiplier,
                                                                const std::vector<double>& orders);

}  // namespace fedlora::privacy

#endif  // FEDLORA_PRIVACY_SUBSAMPLING_H_
