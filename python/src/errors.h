// absl::Status and libtorch errors as Python exceptions (fedlora.Error), carrying the message
// the CLI prints after "fedlora: error: ".
#ifndef FEDLORA_PYTHON_SRC_ERRORS_H_
#define FEDLORA_PYTHON_SRC_ERRORS_H_

#include <pybind11/pybind11.h>

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fedlora::python {

// Thrown by Check(); translated to fedlora.Error (with .code, the absl status code name).
struct StatusError {
  absl::Status status;
};

inline void Check(const absl::Status& s) {
  if (!s.ok()) throw StatusError{s};
}
template <typename T>
T Take(absl::StatusOr<T> s) {
  if (!s.ok()) throw StatusError{s.status()};
  return *std::move(s);
}

// Registers fedlora.Error and the translators (StatusError, c10::Error) on `m`.
void RegisterErrors(pybind11::module_& m);

}  // namespace fedlora::python

#endif  // FEDLORA_PYTHON_SRC_ERRORS_H_
