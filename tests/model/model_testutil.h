// Shared helpers for the model tests: tiny configs (as a struct and as config.json) and
// scratch directories.
#ifndef FEDLORA_TESTS_MODEL_MODEL_TESTUTIL_H_
#define FEDLORA_TESTS_MODEL_MODEL_TESTUTIL_H_

#include <string>

#include "fedlora/model/config.h"
#include "nlohmann/json.hpp"

namespace fedlora::model::testing {

// A minimal valid Llama config.json in Hugging Face's spelling: vocab 320, hidden 64, 4 heads
// over 2 key/value heads, 2 layers, context 128, BOS 1, EOS 2.
nlohmann::json TinyConfigJson();

// vocab 50, hidden 16, 2 heads of 8 (1 key/value head), MLP 24, 2 layers, context 32.
LlamaConfig TinyConfig(bool tied);

// A fresh, empty temporary directory whose name includes `tag` and the process id.
std::string FreshTempDir(const std::string& tag);

// Writes `config` as `dir`/config.json.
void WriteConfigJson(const std::string& dir, const nlohmann::json& config);

}  // namespace fedlora::model::testing

#endif  // FEDLORA_TESTS_MODEL_MODEL_TESTUTIL_H_
