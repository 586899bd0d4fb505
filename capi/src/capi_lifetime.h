// A runtime's lifetime across threads (docs/capi.md, "Threads"): every call holds the runtime
// while it runs, and fedlora_runtime_close refuses new calls, waits for the held ones and only
// then frees it. A pointer that is not open (closed already, never opened) is refused with
// INVALID_ARGUMENT instead of being dereferenced.
#ifndef FEDLORA_CAPI_LIFETIME_H_
#define FEDLORA_CAPI_LIFETIME_H_

struct fedlora_runtime;

namespace fedlora::capi {

// Records a runtime fedlora_runtime_open has made.
void RegisterRuntime(fedlora_runtime* rt);

// One call's hold on a runtime. code() is FEDLORA_OK when the call may go on; otherwise
// INVALID_ARGUMENT (NULL, or not open) or FAILED_PRECONDITION (being closed), with the
// thread's last error set.
class RuntimeHold {
 public:
  explicit RuntimeHold(fedlora_runtime* rt);
  ~RuntimeHold();
  RuntimeHold(const RuntimeHold&) = delete;
  RuntimeHold& operator=(const RuntimeHold&) = delete;
  int code() const { return code_; }

 private:
  fedlora_runtime* rt_;
  int code_;
};

// Marks `rt` as closing (new calls are refused), waits until no call holds it and forgets it:
// the caller then owns it and deletes it. INVALID_ARGUMENT when it is not open or another
// close is under way.
int UnregisterRuntime(fedlora_runtime* rt);

}  // namespace fedlora::capi

#endif  // FEDLORA_CAPI_LIFETIME_H_
