// The object behind fedlora_runtime*: a loaded base model with the installed release's adapter
// and the personal adapter attached, the encrypted text store, and the trust store.
#ifndef FEDLORA_CAPI_RUNTIME_H_
#define FEDLORA_CAPI_RUNTIME_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "detached_scope.h"
#include "fedlora.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/common/release.h"
#include "fedlora/device/device_conditions.h"
#include "fedlora/device/generate.h"
#include "fedlora/device/runtime.h"
#include "fedlora/device/personal_keyboard.h"
#include "fedlora/device/text_store.h"

struct fedlora_runtime {
  // One call at a time on the model, the adapters and the store. fedlora_participate holds it
  // only briefly (it trains on a model of its own), so suggestions do not wait for a round.
  std::mutex mu;
  std::mutex round_mu;  // one fedlora_participate / fedlora_enroll at a time
  // The device conditions as the app last reported them (fedlora_set_conditions, or the
  // policy a fedlora_participate started with); read between a round's phases.
  std::mutex conditions_mu;
  fedlora::device::DeviceConditions conditions;
  std::string model_dir;
  std::string state_dir;
  fedlora::device::Runtime rt;  // base + tokenizer; adapters are managed below
  std::unique_ptr<fedlora::adapters::LoraAdapter> release;   // installed release, if any
  uint64_t release_version = 0;
  std::unique_ptr<fedlora::adapters::LoraAdapter> personal;  // <state>/personal, if any
  bool attached = false;
  fedlora::device::TextStoreOptions store_options;
  std::optional<fedlora::device::TextStore> store;
  uint64_t forgets = 0;  // fedlora_forget calls: training that began before one keeps nothing
  bool has_trust = false;
  fedlora::TrustStore trust;
  std::string segment = "global";  // fedlora_config.release_segment
  std::string base_sha256;         // computed at the first network call
  // The last suggestion's prefix and KV cache (device/generate.h); cleared whenever the
  // attached adapters change.
  fedlora::device::SuggestState suggest_state;
  // The lexicon strip with the personal word n-gram, when the base ships public_ngram.txt
  // (device/personal_keyboard.h): counted from the text store at open and at each observe,
  // reset by forget. Absent: the greedy strip.
  std::optional<fedlora::device::PersonalKeyboard> keyboard;

  // Release first, then the personal adapter (the order suggest and training assume).
  absl::Status AttachAll();
  void DetachAll();
  // (Re)reads <state>/release.json and loads the current release's adapter (detached).
  absl::Status LoadRelease();
  // The store's texts, oldest first; FAILED_PRECONDITION with a hint when there are none.
  absl::StatusOr<std::vector<std::string>> StoredTexts();
  absl::StatusOr<std::string> BaseSha256();
};

namespace fedlora::capi {

// fedlora_config's release trust beyond the key files (capi_release_config.cc): revoked key
// ids into rt->trust and the segment. INVALID_ARGUMENT naming a malformed id or segment.
absl::Status ApplyReleaseConfig(const fedlora_config& config, fedlora_runtime* rt);

// The app's policy as the device's rules and conditions (device/device_conditions.h).
inline device::ConditionRules RulesOf(const fedlora_policy& p) {
  device::ConditionRules r;
  r.require_charging = p.require_charging != 0;
  r.require_unmetered = p.require_unmetered != 0;
  r.require_idle = p.require_idle != 0;
  r.min_battery_percent = p.min_battery_percent;
  return r;
}
inline device::DeviceConditions ConditionsOf(const fedlora_policy& p) {
  return {p.charging != 0, p.unmetered != 0, p.idle != 0, p.battery_percent};
}

// Detaches every adapter for its lifetime, then attaches them again without ever throwing
// (detached_scope.h).
using DetachedScope = BasicDetachedScope<fedlora_runtime>;

}  // namespace fedlora::capi

#endif  // FEDLORA_CAPI_RUNTIME_H_
