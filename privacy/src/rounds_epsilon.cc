// Epsilon of a run of identical rounds under either sampling, and the noise that reaches a
// target epsilon (`fedlora privacy epsilon|noise --sampling`, the Python module's accountant).
#include <cmath>

#include "absl/strings/str_format.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/privacy/rdp.h"
#include "fedlora/privacy/round_accounting.h"
#include "noise_search.h"

namespace fedlora::privacy {

absl::StatusOr<EpsilonResult> ComputeRoundsEpsilon(const RoundMechanism& m, long long steps,
                                                   double delta) {
  if (m.sampling == Sampling::kPoisson && m.gaussian_noise_multiplier && m.ddg.empty()) {
    return ComputeEpsilon({m.q, *m.gaussian_noise_multiplier, steps, delta});  // the same RDP
  }
  if (steps < 0) return absl::InvalidArgumentError("privacy: steps must be >= 0");
  if (!(delta > 0 && delta < 1)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: delta must be in (0, 1), got %g (hint: 1e-5)", delta));
  }
  const std::vector<double> orders = DefaultRdpOrders();
  FEDLORA_ASSIGN_OR_RETURN(std::vector<double> rdp, ComputeRoundRdp(m, orders));
  for (double& r : rdp) r *= static_cast<double>(steps);
  return RdpToEpsilon(orders, rdp, delta);
}

absl::StatusOr<double> ComputeRoundsNoiseMultiplier(Sampling sampling, double q, long long steps,
                                                    double delta, double target_epsilon) {
  if (sampling == Sampling::kPoisson) {
    return ComputeNoiseMultiplier({q, 0, steps, delta}, target_epsilon);
  }
  if (!(target_epsilon > 0) || !std::isfinite(target_epsilon)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: target epsilon must be positive and finite, got %g", target_epsilon));
  }
  RoundMechanism m;
  m.sampling = sampling;
  m.q = q;
  m.gaussian_noise_multiplier = 1;
  // Checks q and delta once, with their own messages.
  FEDLORA_RETURN_IF_ERROR(ComputeRoundsEpsilon(m, 0, delta).status());
  FEDLORA_RETURN_IF_ERROR(ComputeRoundRdp(m, DefaultRdpOrders()).status());
  if (steps == 0) return 0.0;
  auto eps_at = [&](double noise) -> absl::StatusOr<double> {
    m.gaussian_noise_multiplier = noise;
    FEDLORA_ASSIGN_OR_RETURN(EpsilonResult r, ComputeRoundsEpsilon(m, steps, delta));
    return r.epsilon;
  };
  return internal::SmallestNoiseFor(
      eps_at, target_epsilon,
      absl::StrFormat("a fixed-size cohort, q=%g, %d steps, delta=%g", q, steps, delta));
}

}  // namespace fedlora::privacy
