// privacy::RoundMechanism as JSON, for the store's privacy ledger: the charge of every round is
// persisted so that a restarted coordinator composes exactly what it charged before.
#ifndef FEDLORA_COORDINATOR_SRC_MECHANISM_JSON_H_
#define FEDLORA_COORDINATOR_SRC_MECHANISM_JSON_H_

#include <string>

#include "absl/status/statusor.h"
#include "fedlora/privacy/round_accounting.h"

namespace fedlora::coordinator {

std::string MechanismToJson(const privacy::RoundMechanism& m);
// DATA_LOSS when the ledger entry cannot be read back (a damaged store: never guess a charge).
absl::StatusOr<privacy::RoundMechanism> MechanismFromJson(const std::string& text);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_SRC_MECHANISM_JSON_H_
