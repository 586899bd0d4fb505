#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/privacy/ddg_accounting.h"
#include "fedlora/privacy/rdp.h"
#include "sim_state.h"

namespace fedlora::sim {

SimAccountant::SimAccountant(DpMode mode, double q, double noise_multiplier, double delta)
    : mode_(mode),
      q_(q),
      noise_(noise_multiplier),
      delta_(delta),
      orders_(privacy::DefaultRdpOrders()),
      rdp_(orders_.size(), 0.0) {}

absl::StatusOr<std::vector<double>> SimAccountant::RoundRdp(
    const std::optional<privacy::DdgParams>& ddg) const {
  if (mode_ == DpMode::kDistributed) {
    if (!ddg) return absl::InternalError("distributed DP round without DDG parameters");
    return privacy::ComputeDdgRdp(*ddg, q_, orders_);
  }
  return privacy::ComputeRdpPoissonGaussian(q_, noise_, orders_);
}

absl::StatusOr<double> SimAccountant::EpsilonIfCharged(
    const std::optional<privacy::DdgParams>& ddg) const {
  if (mode_ == DpMode::kNone) return std::numeric_limits<double>::infinity();
  FEDLORA_ASSIGN_OR_RETURN(std::vector<double> round, RoundRdp(ddg));
  std::vector<double> total = rdp_;
  for (size_t i = 0; i < total.size(); ++i) total[i] += round[i];
  FEDLORA_ASSIGN_OR_RETURN(privacy::EpsilonResult e, privacy::RdpToEpsilon(orders_, total, delta_));
  return e.epsilon;
}

absl::Status SimAccountant::Charge(const std::optional<privacy::DdgParams>& ddg) {
  if (mode_ == DpMode::kNone) {
    epsilon_ = std::numeric_limits<double>::infinity();
    return absl::OkStatus();
  }
  FEDLORA_ASSIGN_OR_RETURN(std::vector<double> round, RoundRdp(ddg));
  for (size_t i = 0; i < rdp_.size(); ++i) rdp_[i] += round[i];
  FEDLORA_ASSIGN_OR_RETURN(privacy::EpsilonResult e, privacy::RdpToEpsilon(orders_, rdp_, delta_));
  epsilon_ = e.epsilon;
  return absl::OkStatus();
}

}  // namespace fedlora::sim
