// fedlora_privacy_spent: the device's own ledger (device/device_ledger.h) for the app.
#include "capi_runtime.h"
#include "capi_status.h"
#include "fedlora/device/device_ledger.h"
#include "fedlora/device/task_privacy.h"

using fedlora::capi::FromStatus;
using fedlora::capi::Guarded;
using fedlora::capi::SetError;

extern "C" {

int fedlora_privacy_spent(fedlora_runtime* rt, const fedlora_policy* policy_in,
                          fedlora_privacy* out) {
  return Guarded("fedlora_privacy_spent", [&]() -> int {
    if (rt == nullptr) return SetError(FEDLORA_INVALID_ARGUMENT, "the runtime is NULL");
    if (out == nullptr) return SetError(FEDLORA_INVALID_ARGUMENT, "fedlora_privacy is NULL");
    fedlora_policy policy;
    fedlora_policy_init(&policy);
    int code = FEDLORA_OK;
    if (policy_in != nullptr && !fedlora::capi::ReadStruct(policy_in, fedlora_policy_init,
                                                           "fedlora_policy", &policy, &code)) {
      return code;
    }
    fedlora::device::DevicePolicy p;
    p.epsilon_budget = policy.epsilon_budget;
    p.delta = policy.delta;
    if (auto s = fedlora::device::ValidatePolicy(p); !s.ok()) return FromStatus(s);
    std::lock_guard<std::mutex> lock(rt->mu);
    auto ledger = fedlora::device::DeviceLedger::Open(rt->state_dir);
    if (!ledger.ok()) return FromStatus(ledger.status());
    auto spent = ledger->Epsilon(policy.delta);
    if (!spent.ok()) return FromStatus(spent.status());
    fedlora_privacy result;
    fedlora_privacy_init(&result);
    result.epsilon_spent = *spent;
    result.epsilon_budget = policy.epsilon_budget;
    result.delta = policy.delta;
    result.rounds_charged = ledger->rounds_charged();
    if (!ledger->entries().empty()) {
      result.coordinator_epsilon = ledger->entries().back().coordinator_epsilon;
      result.coordinator_delta = ledger->entries().back().coordinator_delta;
    }
    fedlora::capi::WriteStruct(result, out);
    return FEDLORA_OK;
  });
}

}  // extern "C"
