// Helpers shared by the sim_config*.cc files and the report (not part of the public API).
#ifndef FEDLORA_SIM_SIM_CONFIG_INTERNAL_H_
#define FEDLORA_SIM_SIM_CONFIG_INTERNAL_H_

#include <string>

#include "fedlora/sim/sim_config.h"
#include "nlohmann/json.hpp"

namespace fedlora::sim::internal {

// The known key closest to `key` (edit distance; a known key with the same name after the
// dot in another section counts as distance 1, one whose name after the dot starts with the
// given name as distance 2), or "" when none is close.
std::string SuggestKey(const std::string& key);

// Sets `key` ("section.key") from its text form. Returns false when the key is unknown;
// otherwise sets *problem to "" on success or to what is wrong with the value (e.g.
// "expected an integer, got 'ten'"), leaving the field unchanged.
bool SetKnownKey(const std::string& key, const std::string& value, SimConfig* config,
                 std::string* problem);

// A value as written in a config file: strings unquoted, lists comma-joined, numbers and
// booleans as JSON writes them.
std::string ValueText(const nlohmann::json& value);

}  // namespace fedlora::sim::internal

#endif  // FEDLORA_SIM_SIM_CONFIG_INTERNAL_H_
