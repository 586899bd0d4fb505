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
#include "fedlora.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/common/release.h"
#include "fedlora/device/device_conditions.h"
#include "fedlora/device/generate.h"
#include "fedlora/device/runtime.h"
#include "fedlora/device/text_store.h"

struct fedlora_runtime {
  std::mutex mu;  // one call at a time
  std::string model_dir;
  std::string state_dir;
  fedlora::device::Runtime rt;  // base + tokenizer; adapters are managed below
  std::unique_ptr<fedlora::adapters::LoraAdapter> release;   // installed release, if any
  uint64_t release_version = 0;
  std::unique_ptr<fedlora::adapters::LoraAdapter> personal;  // <state>/personal, if any
  bool attached = false;
  fedlora::device::TextStoreOptions store_options;
  std::optional<fedlora::device::TextStore> store;
  bool has_trust = false;
  fedlora::TrustStore trust;
  std::string base_sha256;  // computed at the first network call
  // The last suggestion's prefix and KV cache (device/generate.h); cleared whenever the
  // attached adapters change.
  fedlora::device::SuggestState suggest_state;

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

// Detaches every adapter for its lifetime (training the global delta and the personal
// adapter need the bare base), then attaches them again.
class DetachedScope {
 public:
  explicit DetachedScope(fedlora_runtime* rt) : rt_(rt) { rt_->DetachAll(); }
  ~DetachedScope() { (void)rt_->AttachAll(); }
  DetachedScope(const DetachedScope&) = delete;
  DetachedScope& operator=(const DetachedScope&) = delete;

 private:
  fedlora_runtime* rt_;
};

}  // namespace fedlora::capi

#endif  // FEDLORA_CAPI_RUNTIME_H_
