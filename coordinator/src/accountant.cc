#include "fedlora/coordinator/accountant.h"

#include "fedlora/common/status_macros.h"
#include "fedlora/privacy/rdp.h"

namespace fedlora::coordinator {

PrivacyAccountant::PrivacyAccountant(double delta)
    : delta_(delta), orders_(privacy::DefaultRdpOrders()), rdp_(orders_.size(), 0.0) {}

absl::StatusOr<std::vector<double>> PrivacyAccountant::WithRound(
    const privacy::RoundMechanism& m) const {
  FEDLORA_ASSIGN_OR_RETURN(std::vector<double> round, privacy::ComputeRoundRdp(m, orders_));
  for (size_t i = 0; i < round.size(); ++i) round[i] += rdp_[i];
  return round;
}

absl::StatusOr<double> PrivacyAccountant::EpsilonIfCharged(const privacy::RoundMechanism& m) const {
  FEDLORA_ASSIGN_OR_RETURN(std::vector<double> total, WithRound(m));
  FEDLORA_ASSIGN_OR_RETURN(privacy::EpsilonResult e, privacy::RdpToEpsilon(orders_, total, delta_));
  return e.epsilon;
}

absl::Status PrivacyAccountant::Charge(const privacy::RoundMechanism& m) {
  FEDLORA_ASSIGN_OR_RETURN(std::vector<double> total, WithRound(m));
  FEDLORA_ASSIGN_OR_RETURN(privacy::EpsilonResult e, privacy::RdpToEpsilon(orders_, total, delta_));
  rdp_ = std::move(total);
  epsilon_ = e.epsilon;
  ++rounds_;
  assumption_ = privacy::DescribeAccounting(m);
  return absl::OkStatus();
}

}  // namespace fedlora::coordinator
