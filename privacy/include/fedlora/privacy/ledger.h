// Per-user privacy budget ledger (user-level DP: the unit is everything one device contributes
// in a round). Each user's RDP curve is the sum of the curves charged for them; "may this user
// join another round?" is answered by converting curve + next charge to epsilon at the budget's
// delta.
//
// What to charge: for a user who actually participates in a round of DP-FedAvg with noise
// multiplier z (clip C, noise z C on the sum), charge GaussianParticipationRdp(z) (q = 1: no
// amplification, valid whatever the sampling). Amplified accounting (ComputeRdpPoissonGaussian
// with q < 1) is only valid if you charge EVERY round in which the user was eligible, whether
// sampled or not. For the distributed discrete Gaussian charge ComputeDdgRdp(params, 1, ...).
//
// State is serializable to/from JSON for the coordinator to persist. Not thread-safe.
#ifndef FEDLORA_PRIVACY_LEDGER_H_
#define FEDLORA_PRIVACY_LEDGER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace fedlora::privacy {

// Budget for each user.
struct PrivacyBudget {
  double epsilon = 0;  // > 0
  double delta = 0;    // in (0, 1)
};

// RDP of one un-subsampled Gaussian release with noise multiplier z at each order:
// alpha / (2 z^2). Fails with INVALID_ARGUMENT for z <= 0 or an order <= 1.
absl::StatusOr<std::vector<double>> GaussianParticipationRdp(double noise_multiplier,
                                                             const std::vector<double>& orders);

class PrivacyLedger {
 public:
  // `orders` defaults to DefaultRdpOrders(). Fails with INVALID_ARGUMENT for a bad budget.
  static absl::StatusOr<PrivacyLedger> Create(PrivacyBudget budget,
                                              std::vector<double> orders = {});

  const PrivacyBudget& budget() const { return budget_; }
  const std::vector<double>& orders() const { return orders_; }

  // Epsilon the user would have after also being charged `next_rdp`; the user may join iff this
  // is <= budget().epsilon. Unknown users start at zero. Fails with INVALID_ARGUMENT if the
  // curve does not match orders() or has negative/NaN entries.
  absl::StatusOr<double> EpsilonIfCharged(const std::string& user_id,
                                          const std::vector<double>& next_rdp) const;
  absl::StatusOr<bool> MayParticipate(const std::string& user_id,
                                      const std::vector<double>& next_rdp) const;

  // Charges one participation. Fails like EpsilonIfCharged (state unchanged). Recording does
  // not itself enforce the budget: call MayParticipate first.
  absl::Status RecordParticipation(const std::string& user_id, const std::vector<double>& rdp);

  // Epsilon spent so far at budget().delta (0 for unknown users).
  absl::StatusOr<double> SpentEpsilon(const std::string& user_id) const;
  // Number of recorded participations (0 for unknown users).
  int64_t Participations(const std::string& user_id) const;
  size_t num_users() const { return users_.size(); }

  // {"version":1,"budget":{"epsilon":..,"delta":..},"orders":[..],
  //  "users":{"<id>":{"participations":n,"rdp":[..]}}}
  nlohmann::json ToJson() const;
  // Fails with INVALID_ARGUMENT (hint: file corrupt or from another version) on a malformed
  // document.
  static absl::StatusOr<PrivacyLedger> FromJson(const nlohmann::json& j);

 private:
  struct UserState {
    int64_t participations = 0;
    std::vector<double> rdp;
  };
  PrivacyLedger(PrivacyBudget budget, std::vector<double> orders)
      : budget_(budget), orders_(std::move(orders)) {}
  absl::Status CheckCurve(const std::vector<double>& rdp) const;

  PrivacyBudget budget_;
  std::vector<double> orders_;
  std::map<std::string, UserState> users_;
};

}  // namespace fedlora::privacy

#endif  // FEDLORA_PRIVACY_LEDGER_H_
