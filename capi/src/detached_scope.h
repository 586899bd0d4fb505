// A scope during which a runtime's adapters are detached (training the global delta and the
// personal adapter need the bare base). The destructor attaches them again and never throws:
// it may run while an exception unwinds, and a throw from it would terminate the app. When
// attaching fails (an error or an exception, e.g. out of memory) the runtime is left detached
// and not marked attached; the next suggest attaches again (or reports why it cannot).
#ifndef FEDLORA_CAPI_DETACHED_SCOPE_H_
#define FEDLORA_CAPI_DETACHED_SCOPE_H_

namespace fedlora::capi {

// Runtime: DetachAll() and AttachAll() -> absl::Status (fedlora_runtime; a fake in tests).
template <typename Runtime>
class BasicDetachedScope {
 public:
  explicit BasicDetachedScope(Runtime* rt) : rt_(rt) { rt_->DetachAll(); }
  ~BasicDetachedScope() noexcept { Reattach(); }
  BasicDetachedScope(const BasicDetachedScope&) = delete;
  BasicDetachedScope& operator=(const BasicDetachedScope&) = delete;

 private:
  void Reattach() noexcept {
    try {
      if (rt_->AttachAll().ok()) return;
    } catch (...) {  // fall through: leave the runtime detached
    }
    try {
      rt_->DetachAll();
    } catch (...) {  // nothing more can be done here; `attached` stays false
    }
  }

  Runtime* rt_;
};

}  // namespace fedlora::capi

#endif  // FEDLORA_CAPI_DETACHED_SCOPE_H_
