#include "capi_lifetime.h"

#include <condition_variable>
#include <mutex>
#include <unordered_map>

#include "capi_status.h"
#include "fedlora.h"

namespace fedlora::capi {
namespace {

struct Registry {
  struct State {
    int holds = 0;
    bool closing = false;
  };
  std::mutex mu;
  std::condition_variable released;
  std::unordered_map<const fedlora_runtime*, State> open;
};

// Never destroyed: a call may still run while the process exits.
Registry& Runtimes() {
  static auto* registry = new Registry;
  return *registry;
}

}  // namespace

void RegisterRuntime(fedlora_runtime* rt) {
  Registry& r = Runtimes();
  std::lock_guard<std::mutex> lock(r.mu);
  r.open[rt] = Registry::State{};
}

RuntimeHold::RuntimeHold(fedlora_runtime* rt) : rt_(nullptr), code_(FEDLORA_OK) {
  if (rt == nullptr) {
    code_ = SetError(FEDLORA_INVALID_ARGUMENT,
                     "the runtime is NULL (hint: fedlora_runtime_open first)");
    return;
  }
  Registry& r = Runtimes();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.open.find(rt);
  if (it == r.open.end()) {
    code_ = SetError(FEDLORA_INVALID_ARGUMENT,
                     "this runtime is not open: it was closed, or never opened (hint: keep "
                     "using a runtime only until fedlora_runtime_close)");
    return;
  }
  if (it->second.closing) {
    code_ = SetError(FEDLORA_FAILED_PRECONDITION,
                     "the runtime is being closed by another thread (hint: open a new one)");
    return;
  }
  ++it->second.holds;
  rt_ = rt;
}

RuntimeHold::~RuntimeHold() {
  if (rt_ == nullptr) return;
  Registry& r = Runtimes();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.open.find(rt_);
  if (it != r.open.end() && --it->second.holds == 0 && it->second.closing) {
    r.released.notify_all();
  }
}

int UnregisterRuntime(fedlora_runtime* rt) {
  Registry& r = Runtimes();
  std::unique_lock<std::mutex> lock(r.mu);
  auto it = r.open.find(rt);
  if (it == r.open.end() || it->second.closing) {
    return SetError(FEDLORA_INVALID_ARGUMENT,
                    it == r.open.end()
                        ? "fedlora_runtime_close: this runtime is not open (closed twice?)"
                        : "fedlora_runtime_close: another thread is closing this runtime");
  }
  it->second.closing = true;
  r.released.wait(lock, [&] { return r.open.at(rt).holds == 0; });
  r.open.erase(rt);
  return FEDLORA_OK;
}

}  // namespace fedlora::capi
