// What a whole federated round charges, for the coordinator's published privacy statement.
//
// A round samples a cohort, then releases one or more noisy sums over it (the clipped update sum
// and, with adaptive clipping, the clipped-count). The releases of one round are composed (RDP
// added) BEFORE amplification by sampling, since they all see the same cohort. The neighbouring
// relation follows the sampling:
//  * Poisson sampling (each user joins with probability q): add/remove one user. Gaussian:
//    ComputeRdpPoissonGaussian (tight); DDG: Zhu & Wang 2019 Theorem 5 on Proposition 14.
//  * Fixed-size cohort drawn without replacement (q = cohort / population, population size
//    public): replace one user, whose update can move the sum by up to twice the clip, so every
//    sensitivity is doubled. Gaussian: WBK 2019 Theorem 27 (ComputeRdpSampleWorGaussian with
//    noise multiplier z / 2); DDG: WBK 2019 Theorem 9 (WorSubsampledRdp) on ReplaceOne(...).
// An (epsilon, delta) computed under one relation is not comparable to one under the other:
// DescribeAccounting states which one applies.
#ifndef FEDLORA_PRIVACY_ROUND_ACCOUNTING_H_
#define FEDLORA_PRIVACY_ROUND_ACCOUNTING_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/privacy/ddg_accounting.h"
#include "fedlora/privacy/rdp.h"

namespace fedlora::privacy {

enum class Sampling { kPoisson, kFixedSize };

// What one released round costs, as the coordinator publishes it.
struct RoundMechanism {
  Sampling sampling = Sampling::kPoisson;
  double q = 1;  // Poisson: sampling probability; fixed size: cohort / population. In (0, 1].
  // Central (trusted-aggregator) Gaussian: total noise multiplier z of the clipped-sum query
  // (already composed with an adaptive-clipping count query by the TFF noise split), relative to
  // C under add/remove. Unset in distributed mode.
  std::optional<double> gaussian_noise_multiplier;
  // Distributed mode: the DDG sum mechanisms released in the round (the value, and the
  // clipped-count when adaptive clipping is on), with ADD/REMOVE sensitivities; they are
  // composed (RDP added) before amplification.
  std::vector<DdgSumMechanism> ddg;
};

// RDP of one round at each order. Poisson: add/remove neighbours (Gaussian:
// ComputeRdpPoissonGaussian; DDG: sum of DdgSumRdp then PoissonSubsampledRdp). Fixed size:
// replace-one neighbours (Gaussian: ComputeRdpSampleWorGaussian(q, z/2); DDG: ReplaceOne each,
// sum, WorSubsampledRdp). DDG orders are charged at ceil(alpha); above 1e5 the unamplified value
// is charged. Infinite orders give infinity.
// Fails with INVALID_ARGUMENT (with a hint) if q is outside (0, 1], neither or both of
// gaussian/ddg are set, the noise multiplier is <= 0 or not finite, a DDG mechanism has a
// negative/non-finite sensitivity, local_sigma2 <= 0, n_min < 1 or dim < 1, or an order is NaN
// or <= 1.
absl::StatusOr<std::vector<double>> ComputeRoundRdp(const RoundMechanism& m,
                                                    const std::vector<double>& orders);

// Epsilon after `steps` identical rounds of `m` at `delta` (RDP added over rounds, then
// converted). INVALID_ARGUMENT as ComputeRoundRdp, or for steps < 0 / delta outside (0, 1).
absl::StatusOr<EpsilonResult> ComputeRoundsEpsilon(const RoundMechanism& m, long long steps,
                                                   double delta);

// The smallest Gaussian noise multiplier (central DP, relative precision 1e-7) for which `steps`
// rounds with this sampling and q stay within `target_epsilon` at `delta`: for Poisson the same
// as ComputeNoiseMultiplier, for a fixed-size cohort under replace-one neighbours. OUT_OF_RANGE
// when even 1e6 cannot reach the target.
absl::StatusOr<double> ComputeRoundsNoiseMultiplier(Sampling sampling, double q, long long steps,
                                                    double delta, double target_epsilon);

// One sentence for reports: the neighbouring relation and the sampling the epsilon assumes, e.g.
// "add/remove one user; Poisson sampling, q = 0.1" / "replace one user (population size public);
// fixed-size cohort sampled without replacement, q = 0.1".
std::string DescribeAccounting(const RoundMechanism& m);

}  // namespace fedlora::privacy

#endif  // FEDLORA_PRIVACY_ROUND_ACCOUNTING_H_
