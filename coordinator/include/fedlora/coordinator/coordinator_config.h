// CoordinatorOptions as the JSON file `fedlora coordinator init` writes to <state>/coordinator.json
// and `fedlora coordinator run` reads (every key documented in docs/coordinator.md).
#ifndef FEDLORA_COORDINATOR_COORDINATOR_CONFIG_H_
#define FEDLORA_COORDINATOR_COORDINATOR_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"
#include "fedlora/coordinator/round_manager.h"
#include "nlohmann/json.hpp"

namespace fedlora::coordinator {

nlohmann::json CoordinatorOptionsToJson(const CoordinatorOptions& options);
// Missing keys keep their defaults; INVALID_ARGUMENT naming the key for a wrong type, an
// unknown key, or an inconsistent recipe (ValidateRecipe).
absl::StatusOr<CoordinatorOptions> CoordinatorOptionsFromJson(const nlohmann::json& j);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_COORDINATOR_CONFIG_H_
