// Internal helpers shared by the GGUF writer (gguf.cc) and reader (gguf_reader.cc).
#ifndef FEDLORA_ADAPTERS_GGUF_INTERNAL_H_
#define FEDLORA_ADAPTERS_GGUF_INTERNAL_H_

#include <cstddef>
#include <cstdint>

#include "fedlora/adapters/gguf.h"

namespace fedlora::adapters::internal {

inline uint64_t Pad(uint64_t n, uint64_t align) { return (n + align - 1) / align * align; }
inline bool PowerOfTwo(uint64_t a) { return a != 0 && (a & (a - 1)) == 0; }

// Fixed size of a scalar value type; 0 for string/array/unknown.
inline size_t ScalarSize(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    default:
      return 0;
  }
}
inline bool KnownType(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kFloat64); }

}  // namespace fedlora::adapters::internal

#endif  // FEDLORA_ADAPTERS_GGUF_INTERNAL_H_
