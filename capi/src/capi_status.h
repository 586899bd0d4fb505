// Internals of the C API shared by its files: this thread's last error, turning absl statuses
// and C++ exceptions into status codes at the edge, and reading caller structs by struct_size.
#ifndef FEDLORA_CAPI_STATUS_H_
#define FEDLORA_CAPI_STATUS_H_

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "fedlora.h"

namespace fedlora::capi {

// Sets this thread's last error and returns `code`.
int SetError(int code, std::string message);
void ClearError();
// The status's code and message (OK clears the error).
int FromStatus(const absl::Status& status);
// Runs `body` (returns a status code) with the last error cleared first; a C++ exception
// (c10::Error from libtorch, std::bad_alloc, anything else) becomes INTERNAL or
// RESOURCE_EXHAUSTED with its message: nothing is thrown across the C boundary.
template <typename F>
int Guarded(const char* function, F&& body);

// A caller's struct as this library's version of it: defaults from `init`, then the caller's
// first struct_size bytes. INVALID_ARGUMENT (into *code) when the pointer is NULL or
// struct_size was never set (the caller skipped fedlora_*_init).
template <typename T>
bool ReadStruct(const T* in, void (*init)(T*), const char* name, T* out, int* code) {
  if (in == nullptr) {
    *code = SetError(FEDLORA_INVALID_ARGUMENT, std::string(name) + " is NULL");
    return false;
  }
  if (in->struct_size < sizeof(size_t) + 1) {
    *code = SetError(FEDLORA_INVALID_ARGUMENT,
                     std::string(name) + ".struct_size is " + std::to_string(in->struct_size) +
                         " (hint: fill it with " + name + "_init() first)");
    return false;
  }
  init(out);
  std::memcpy(static_cast<void*>(out), in, std::min(in->struct_size, sizeof(T)));
  out->struct_size = sizeof(T);
  return true;
}

// Writes `value` into the caller's struct, no further than its struct_size.
template <typename T>
void WriteStruct(const T& value, T* out) {
  if (out == nullptr || out->struct_size < sizeof(size_t)) return;
  const size_t keep = out->struct_size;
  std::memcpy(static_cast<void*>(out), &value, std::min(keep, sizeof(T)));
  out->struct_size = keep;
}

// Copies `s` into buf[0..size-1], NUL-terminated, cut at a UTF-8 character boundary.
void CopyUtf8(const std::string& s, char* buf, size_t size);

int GuardedCatch(const char* function);  // the catch clauses of Guarded

template <typename F>
int Guarded(const char* function, F&& body) {
  ClearError();
  try {
    return body();
  } catch (...) {
    return GuardedCatch(function);
  }
}

}  // namespace fedlora::capi

#endif  // FEDLORA_CAPI_STATUS_H_
