// The C API's error channel, version functions and struct defaults.
#include "capi_status.h"

#include <c10/util/Exception.h>

#include <new>
#include <stdexcept>

#include "fedlora/device/task_privacy.h"

namespace fedlora::capi {
namespace {
thread_local std::string last_error;
}  // namespace

int SetError(int code, std::string message) {
  last_error = std::move(message);
  return code;
}

void ClearError() { last_error.clear(); }

int FromStatus(const absl::Status& status) {
  if (status.ok()) {
    ClearError();
    return FEDLORA_OK;
  }
  return SetError(static_cast<int>(status.code()), std::string(status.message()));
}

int GuardedCatch(const char* function) {
  // Rethrown here so that each kind gets its own message.
  try {
    throw;
  } catch (const c10::Error& e) {
    return SetError(FEDLORA_INTERNAL, std::string(function) + ": libtorch error: " +
                                          e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    return SetError(FEDLORA_RESOURCE_EXHAUSTED,
                    std::string(function) +
                        ": out of memory (hint: fewer threads, a compressed base, or close "
                        "other runtimes)");
  } catch (const std::exception& e) {
    return SetError(FEDLORA_INTERNAL, std::string(function) + ": " + e.what());
  } catch (...) {
    return SetError(FEDLORA_INTERNAL, std::string(function) + ": unknown exception");
  }
}

void CopyUtf8(const std::string& s, char* buf, size_t size) {
  if (size == 0) return;
  size_t n = std::min(s.size(), size - 1);
  // Back off continuation bytes (10xxxxxx) so that no character is cut in half.
  if (n < s.size()) {
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  }
  std::memcpy(buf, s.data(), n);
  buf[n] = '\0';
}

}  // namespace fedlora::capi

extern "C" {

int fedlora_abi_version(void) { return FEDLORA_ABI_VERSION; }

const char* fedlora_version(void) { return FEDLORA_VERSION_STRING; }  // project(VERSION)

const char* fedlora_last_error(void) { return fedlora::capi::last_error.c_str(); }

const char* fedlora_status_name(int status) {
  switch (status) {
    case FEDLORA_OK: return "OK";
    case FEDLORA_CANCELLED: return "CANCELLED";
    case FEDLORA_UNKNOWN: return "UNKNOWN";
    case FEDLORA_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case FEDLORA_DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case FEDLORA_NOT_FOUND: return "NOT_FOUND";
    case FEDLORA_ALREADY_EXISTS: return "ALREADY_EXISTS";
    case FEDLORA_PERMISSION_DENIED: return "PERMISSION_DENIED";
    case FEDLORA_RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case FEDLORA_FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case FEDLORA_ABORTED: return "ABORTED";
    case FEDLORA_OUT_OF_RANGE: return "OUT_OF_RANGE";
    case FEDLORA_UNIMPLEMENTED: return "UNIMPLEMENTED";
    case FEDLORA_INTERNAL: return "INTERNAL";
    case FEDLORA_UNAVAILABLE: return "UNAVAILABLE";
    case FEDLORA_DATA_LOSS: return "DATA_LOSS";
    case FEDLORA_UNAUTHENTICATED: return "UNAUTHENTICATED";
    case FEDLORA_REFUSED_BY_POLICY: return "REFUSED_BY_POLICY";
    default: return "?";
  }
}

void fedlora_config_init(fedlora_config* c) {
  if (c == nullptr) return;
  *c = fedlora_config{};
  c->struct_size = sizeof(*c);
  c->retention_days = 30;
  c->max_text_bytes = int64_t{4} << 20;
}

void fedlora_policy_init(fedlora_policy* p) {
  if (p == nullptr) return;
  *p = fedlora_policy{};
  p->struct_size = sizeof(*p);
  // The conditions stay 0 ("not known"): a runtime refuses until the app fills them in.
  p->require_charging = 1;
  p->require_unmetered = 1;
  p->require_idle = 1;
  p->min_battery_percent = 20;
  p->min_noise_multiplier = 0.3;
  p->rounds = 1;
  p->max_seconds = 600;
  p->epsilon_budget = fedlora::device::kDefaultDeviceEpsilonBudget;
  p->delta = fedlora::privacy::kMaxDefaultDelta;
}

void fedlora_budget_init(fedlora_budget* b) {
  if (b == nullptr) return;
  *b = fedlora_budget{};
  b->struct_size = sizeof(*b);
  b->max_steps = 20;
}

void fedlora_train_result_init(fedlora_train_result* r) {
  if (r == nullptr) return;
  *r = fedlora_train_result{};
  r->struct_size = sizeof(*r);
}

void fedlora_coordinator_init(fedlora_coordinator* c) {
  if (c == nullptr) return;
  *c = fedlora_coordinator{};
  c->struct_size = sizeof(*c);
  c->timeout_seconds = 60;
}

void fedlora_participation_init(fedlora_participation* p) {
  if (p == nullptr) return;
  *p = fedlora_participation{};
  p->struct_size = sizeof(*p);
}

void fedlora_privacy_init(fedlora_privacy* p) {
  if (p == nullptr) return;
  *p = fedlora_privacy{};
  p->struct_size = sizeof(*p);
}

}  // extern "C"
