// fedlora_set_conditions: the app reports a change of the device's state (unplugged, screen
// on, metered network) while a fedlora_participate runs; the round's loop reads it between
// phases. It never waits for the runtime's lock.
#include <mutex>

#include "capi_lifetime.h"
#include "capi_runtime.h"
#include "capi_status.h"

using fedlora::capi::Guarded;

extern "C" {

int fedlora_set_conditions(fedlora_runtime* rt, const fedlora_policy* now_in) {
  return Guarded("fedlora_set_conditions", [&]() -> int {
    fedlora::capi::RuntimeHold hold(rt);
    if (hold.code() != FEDLORA_OK) return hold.code();
    fedlora_policy now;
    int code = FEDLORA_OK;
    if (!fedlora::capi::ReadStruct(now_in, fedlora_policy_init, "fedlora_policy", &now, &code)) {
      return code;
    }
    std::lock_guard<std::mutex> lock(rt->conditions_mu);
    rt->conditions = fedlora::capi::ConditionsOf(now);
    return FEDLORA_OK;
  });
}

}  // extern "C"
