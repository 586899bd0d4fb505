// The epsilon that holds against the coordinator itself (docs/privacy.md, "Threat model").
//
// The coordinator flips the sampling coins, stores who took part in each round and tells every
// cohort member the session, so against it amplification by sampling does not hold: each user
// pays, in full, for every round it took part in. What protects a user against the coordinator
// is only the noise the devices add themselves and the survivor minimum secure aggregation
// enforces (the coordinator sees sums of at least n_min devices, never one device's input).
// The neighbouring relation is the round's own (add/remove of one user's contribution under
// Poisson sampling, replace-one for a fixed-size cohort), in a round whose membership the
// adversary knows: q = 1. So this epsilon is never below the observers' one for the same rounds.
//
// A trusted-aggregator (central) round gives no protection against the coordinator: it sees
// each clipped update before adding noise, so its charge is +infinity.
#ifndef FEDLORA_PRIVACY_PARTICIPATION_ACCOUNTANT_H_
#define FEDLORA_PRIVACY_PARTICIPATION_ACCOUNTANT_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/privacy/round_accounting.h"

namespace fedlora::privacy {

// RDP at `orders` that one round of `m` costs a user who took part in it, against the
// coordinator: the round's DDG releases composed without amplification (q = 1),
// or +infinity at every order for a central round. INVALID_ARGUMENT like ComputeRoundRdp.
absl::StatusOr<std::vector<double>> RdpAgainstCoordinator(const RoundMechanism& m,
                                                          const std::vector<double>& orders);

// Per-participant ledgers of RdpAgainstCoordinator, for a coordinator's store or a simulation
// (a device keeps its own: device/device_ledger.h).
class ParticipationAccountant {
 public:
  // `delta` in (0, 1); `orders` default to DefaultRdpOrders().
  explicit ParticipationAccountant(double delta, std::vector<double> orders = {});

  // Charges one round of `m` to each of `participants` (ids may repeat across calls, not within
  // one). State unchanged on error.
  absl::Status Charge(const std::vector<std::string>& participants, const RoundMechanism& m);

  // Epsilon of one participant at the accountant's delta (0 for one never charged; +infinity
  // after a central round).
  double Epsilon(const std::string& participant) const;
  // The largest epsilon over all participants, and the most rounds any one took part in.
  double WorstEpsilon() const;
  int MaxRounds() const;
  size_t participants() const { return ledgers_.size(); }
  double delta() const { return delta_; }

 private:
  struct Ledger {
    std::vector<double> rdp;
    int rounds = 0;
  };
  double delta_;
  std::vector<double> orders_;
  std::map<std::string, Ledger> ledgers_;
};

// "epsilon 2.31" or "unbounded" for +infinity: how reports print an epsilon that may be
// infinite.
std::string FormatEpsilon(double epsilon);

}  // namespace fedlora::privacy

#endif  // FEDLORA_PRIVACY_PARTICIPATION_ACCOUNTANT_H_
