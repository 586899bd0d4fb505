#include "fedlora/coordinator/run_epsilons.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/coordinator/accountant.h"
#include "fedlora/coordinator/pinned_params.h"
#include "fedlora/privacy/participation_accountant.h"
#include "mechanism_json.h"

namespace fedlora::coordinator {
namespace {

nlohmann::json EpsilonJson(double eps) {
  if (std::isfinite(eps)) return eps;
  return nullptr;
}

}  // namespace

nlohmann::json RunEpsilons::ToJson() const {
  return {
      {"delta", delta},
      {"rounds_charged", rounds_charged},
      {"epsilon_observers",
       {{"epsilon", EpsilonJson(observers)},
        {"unbounded", !std::isfinite(observers)},
        {"holds_against", "anyone who sees only the released adapters"},
        {"assumes", observers_assumption}}},
      {"epsilon_coordinator",
       {{"epsilon", EpsilonJson(coordinator)},
        {"unbounded", !std::isfinite(coordinator)},
        {"holds_against",
         "the coordinator itself (it flips the coins and knows who took part): each device's "
         "rounds without amplification; the worst device"},
        {"max_rounds_per_device", max_rounds_per_device}}},
  };
}

absl::StatusOr<RunEpsilons> ComputeRunEpsilons(const Store& store, double delta) {
  if (!(delta > 0 && delta < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("privacy: delta must be in (0, 1), got ", delta));
  }
  FEDLORA_ASSIGN_OR_RETURN(auto charges, store.Charges());
  FEDLORA_ASSIGN_OR_RETURN(auto participants, store.ParticipantsByRound());
  RunEpsilons out;
  out.delta = delta;
  PrivacyAccountant observers(delta);
  privacy::ParticipationAccountant devices(delta);
  for (const PrivacyCharge& c : charges) {
    FEDLORA_ASSIGN_OR_RETURN(privacy::RoundMechanism m, MechanismFromJson(c.mechanism));
    FEDLORA_RETURN_IF_ERROR(observers.Charge(m));
    auto it = participants.find(c.round);
    if (it != participants.end()) FEDLORA_RETURN_IF_ERROR(devices.Charge(it->second, m));
  }
  out.rounds_charged = observers.rounds_charged();
  out.observers = observers.epsilon();
  out.observers_assumption = observers.assumption();
  out.coordinator = devices.WorstEpsilon();
  out.max_rounds_per_device = devices.MaxRounds();
  return out;
}

absl::StatusOr<double> PinnedDelta(const Store& store) {
  FEDLORA_ASSIGN_OR_RETURN(std::string text, store.GetMeta(kPinnedPrivacyKey));
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.contains("delta") || !j["delta"].is_number()) {
    return absl::DataLossError("coordinator store: the pinned privacy parameters have no delta");
  }
  return j["delta"].get<double>();
}

}  // namespace fedlora::coordinator
