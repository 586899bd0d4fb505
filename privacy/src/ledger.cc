#include "fedlora/privacy/ledger.h"

#include <cmath>

#include "absl/strings/str_format.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/privacy/rdp.h"

namespace fedlora::privacy {

absl::StatusOr<std::vector<double>> GaussianParticipationRdp(double noise_multiplier,
                                                             const std::vector<double>& orders) {
  return ComputeRdpPoissonGaussian(1.0, noise_multiplier, orders);
}

absl::StatusOr<PrivacyLedger> PrivacyLedger::Create(PrivacyBudget budget,
                                                    std::vector<double> orders) {
  if (!(budget.epsilon > 0) || !std::isfinite(budget.epsilon)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: budget epsilon must be positive and finite, got %g", budget.epsilon));
  }
  if (!(budget.delta > 0 && budget.delta < 1)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("privacy: budget delta must be in (0, 1), got %g", budget.delta));
  }
  if (orders.empty()) orders = DefaultRdpOrders();
  for (double a : orders) {
    if (!(a > 1)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("privacy: ledger RDP orders must be > 1, got %g", a));
    }
  }
  return PrivacyLedger(budget, std::move(orders));
}

absl::Status PrivacyLedger::CheckCurve(const std::vector<double>& rdp) const {
  if (rdp.size() != orders_.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: RDP curve has %d values, the ledger uses %d orders (hint: compute it with "
        "ledger.orders())",
        rdp.size(), orders_.size()));
  }
  for (double r : rdp) {
    if (!(r >= 0)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("privacy: RDP value %g is negative or NaN", r));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<double> PrivacyLedger::EpsilonIfCharged(const std::string& user_id,
                                                       const std::vector<double>& next_rdp) const {
  FEDLORA_RETURN_IF_ERROR(CheckCurve(next_rdp));
  std::vector<double> total = next_rdp;
  if (auto it = users_.find(user_id); it != users_.end()) {
    for (size_t i = 0; i < total.size(); ++i) total[i] += it->second.rdp[i];
  }
  FEDLORA_ASSIGN_OR_RETURN(EpsilonResult r, RdpToEpsilon(orders_, total, budget_.delta));
  return r.epsilon;
}

absl::StatusOr<bool> PrivacyLedger::MayParticipate(const std::string& user_id,
                                                   const std::vector<double>& next_rdp) const {
  FEDLORA_ASSIGN_OR_RETURN(double eps, EpsilonIfCharged(user_id, next_rdp));
  return eps <= budget_.epsilon;
}

absl::Status PrivacyLedger::RecordParticipation(const std::string& user_id,
                                                const std::vector<double>& rdp) {
  FEDLORA_RETURN_IF_ERROR(CheckCurve(rdp));
  UserState& u = users_[user_id];
  if (u.rdp.empty()) u.rdp.assign(orders_.size(), 0.0);
  for (size_t i = 0; i < rdp.size(); ++i) u.rdp[i] += rdp[i];
  ++u.participations;
  return absl::OkStatus();
}

absl::StatusOr<double> PrivacyLedger::SpentEpsilon(const std::string& user_id) const {
  auto it = users_.find(user_id);
  if (it == users_.end()) return 0.0;
  FEDLORA_ASSIGN_OR_RETURN(EpsilonResult r, RdpToEpsilon(orders_, it->second.rdp, budget_.delta));
  return r.epsilon;
}

int64_t PrivacyLedger::Participations(const std::string& user_id) const {
  auto it = users_.find(user_id);
  return it == users_.end() ? 0 : it->second.participations;
}

nlohmann::json PrivacyLedger::ToJson() const {
  nlohmann::json users = nlohmann::json::object();
  for (const auto& [id, u] : users_) {
    users[id] = {{"participations", u.participations}, {"rdp", u.rdp}};
  }
  return {{"version", 1},
          {"budget", {{"epsilon", budget_.epsilon}, {"delta", budget_.delta}}},
          {"orders", orders_},
          {"users", users}};
}

absl::StatusOr<PrivacyLedger> PrivacyLedger::FromJson(const nlohmann::json& j) {
  auto corrupt = [](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "privacy: ledger JSON %s (hint: file corrupt or written by another version)", what));
  };
  try {
    if (!j.is_object() || j.value("version", 0) != 1) return corrupt("has no version 1");
    PrivacyBudget budget{j.at("budget").at("epsilon").get<double>(),
                         j.at("budget").at("delta").get<double>()};
    FEDLORA_ASSIGN_OR_RETURN(PrivacyLedger ledger,
                             Create(budget, j.at("orders").get<std::vector<double>>()));
    for (const auto& [id, u] : j.at("users").items()) {
      UserState s;
      s.participations = u.at("participations").get<int64_t>();
      s.rdp = u.at("rdp").get<std::vector<double>>();
      if (s.participations < 0) return corrupt("has negative participations for " + id);
      FEDLORA_RETURN_IF_ERROR(ledger.CheckCurve(s.rdp));
      ledger.users_[id] = std::move(s);
    }
    return ledger;
  } catch (const nlohmann::json::exception& e) {
    return corrupt(std::string("is malformed: ") + e.what());
  }
}

}  // namespace fedlora::privacy
