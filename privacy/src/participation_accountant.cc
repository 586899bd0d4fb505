#include "fedlora/privacy/participation_accountant.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_format.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/privacy/rdp.h"

namespace fedlora::privacy {

absl::StatusOr<std::vector<double>> RdpAgainstCoordinator(const RoundMechanism& m,
                                                          const std::vector<double>& orders) {
  if (m.gaussian_noise_multiplier) {
    // The trusted aggregator adds the noise after seeing each update: nothing protects a user
    // from it.
    return std::vector<double>(orders.size(), std::numeric_limits<double>::infinity());
  }
  // The round's own neighbouring relation (add/remove under Poisson sampling, replace-one for
  // a fixed-size cohort), in a round whose membership the adversary knows: q = 1.
  RoundMechanism known = m;
  known.q = 1;
  return ComputeRoundRdp(known, orders);
}

ParticipationAccountant::ParticipationAccountant(double delta, std::vector<double> orders)
    : delta_(delta), orders_(orders.empty() ? DefaultRdpOrders() : std::move(orders)) {}

absl::Status ParticipationAccountant::Charge(const std::vector<std::string>& participants,
                                             const RoundMechanism& m) {
  FEDLORA_ASSIGN_OR_RETURN(std::vector<double> round, RdpAgainstCoordinator(m, orders_));
  for (const std::string& p : participants) {
    Ledger& l = ledgers_[p];
    if (l.rdp.empty()) l.rdp.assign(orders_.size(), 0.0);
    for (size_t i = 0; i < round.size(); ++i) l.rdp[i] += round[i];
    l.rounds++;
  }
  return absl::OkStatus();
}

double ParticipationAccountant::Epsilon(const std::string& participant) const {
  auto it = ledgers_.find(participant);
  if (it == ledgers_.end()) return 0;
  for (double r : it->second.rdp) {
    if (!std::isfinite(r)) return std::numeric_limits<double>::infinity();
  }
  auto eps = RdpToEpsilon(orders_, it->second.rdp, delta_);
  // A conversion that fails (it cannot for a valid delta) must never read as "no cost".
  return eps.ok() ? eps->epsilon : std::numeric_limits<double>::infinity();
}

double ParticipationAccountant::WorstEpsilon() const {
  double worst = 0;
  for (const auto& [id, l] : ledgers_) worst = std::max(worst, Epsilon(id));
  return worst;
}

int ParticipationAccountant::MaxRounds() const {
  int most = 0;
  for (const auto& [id, l] : ledgers_) most = std::max(most, l.rounds);
  return most;
}

std::string FormatEpsilon(double epsilon) {
  if (!std::isfinite(epsilon)) return "unbounded";
  return absl::StrFormat("%.4g", epsilon);
}

}  // namespace fedlora::privacy
