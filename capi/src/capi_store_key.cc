// fedlora_rekey_store: after fedlora_forget, the app binds the (empty) store to a new key, so
// that it can delete the old one from its key store at once (include/fedlora.h).
#include <ctime>
#include <mutex>

#include "capi_lifetime.h"
#include "capi_runtime.h"
#include "capi_status.h"

using fedlora::capi::FromStatus;
using fedlora::capi::Guarded;
using fedlora::capi::SetError;

extern "C" {

int fedlora_rekey_store(fedlora_runtime* rt, const uint8_t* key, size_t key_len) {
  return Guarded("fedlora_rekey_store", [&]() -> int {
    fedlora::capi::RuntimeHold hold(rt);
    if (hold.code() != FEDLORA_OK) return hold.code();
    if (key == nullptr || key_len != fedlora::secagg::Secret32::kSize) {
      return SetError(FEDLORA_INVALID_ARGUMENT, "the new store key must be 32 bytes");
    }
    std::lock_guard<std::mutex> lock(rt->mu);
    if (!rt->store->store_id().empty() || rt->store->entries() != 0) {
      return SetError(FEDLORA_FAILED_PRECONDITION,
                      "the text store holds text under its current key (hint: fedlora_forget "
                      "first; a new key applies only to an empty store)");
    }
    fedlora::device::TextStoreOptions options = rt->store_options;
    options.key.emplace(key);
    auto store = fedlora::device::TextStore::Open(options, std::time(nullptr));
    if (!store.ok()) return FromStatus(store.status());
    rt->store_options = options;
    rt->store.emplace(std::move(*store));
    return FEDLORA_OK;
  });
}

}  // extern "C"
