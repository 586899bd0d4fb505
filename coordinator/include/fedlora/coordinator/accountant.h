// The coordinator's privacy accountant for one training run: composes the RDP of every
// released round (privacy::ComputeRoundRdp) and converts to epsilon at the run's delta.
// Which aborted rounds are charged too is FederatedTraining's rule (every one under Poisson
// sampling; under fixed-size cohorts those refused by the norm bound).
#ifndef FEDLORA_COORDINATOR_ACCOUNTANT_H_
#define FEDLORA_COORDINATOR_ACCOUNTANT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/privacy/round_accounting.h"

namespace fedlora::coordinator {

class PrivacyAccountant {
 public:
  explicit PrivacyAccountant(double delta);

  // Epsilon after the rounds so far plus one more round of `m`.
  absl::StatusOr<double> EpsilonIfCharged(const privacy::RoundMechanism& m) const;
  // Adds one round of `m`. Fails (state unchanged) like privacy::ComputeRoundRdp.
  absl::Status Charge(const privacy::RoundMechanism& m);

  double epsilon() const { return epsilon_; }
  double delta() const { return delta_; }
  int rounds_charged() const { return rounds_; }
  // The neighbouring relation and sampling the epsilon assumes (from the last charge).
  const std::string& assumption() const { return assumption_; }

 private:
  // The RDP so far plus one round of `m`.
  absl::StatusOr<std::vector<double>> WithRound(const privacy::RoundMechanism& m) const;
  double delta_;
  std::vector<double> orders_;
  std::vector<double> rdp_;
  double epsilon_ = 0;
  int rounds_ = 0;
  std::string assumption_;
};

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_ACCOUNTANT_H_
