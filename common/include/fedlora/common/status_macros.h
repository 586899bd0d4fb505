// Status propagation helpers used across fedlora module boundaries.
#ifndef FEDLORA_COMMON_STATUS_MACROS_H_
#define FEDLORA_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define FEDLORA_CONCAT_INNER_(a, b) a##b
#define FEDLORA_CONCAT_(a, b) FEDLORA_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define FEDLORA_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::absl::Status fedlora_status_ = (expr);           \
    if (!fedlora_status_.ok()) return fedlora_status_; \
  } while (0)

// `FEDLORA_ASSIGN_OR_RETURN(auto x, MakeX());` unwraps a StatusOr or returns its error.
#define FEDLORA_ASSIGN_OR_RETURN(lhs, expr) \
  FEDLORA_ASSIGN_OR_RETURN_IMPL_(FEDLORA_CONCAT_(fedlora_statusor_, __LINE__), lhs, expr)
#define FEDLORA_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(tmp).value()

#endif  // FEDLORA_COMMON_STATUS_MACROS_H_
