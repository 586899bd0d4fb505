// The GGUF container (version 3, little-endian), as ggml's gguf.cpp reads it and gguf-py's
// GGUFWriter writes it. No torch dependency: values and raw tensor bytes only. The LoRA
// mapping (names, shapes, llama.cpp conventions) lives in export_gguf.h.
//
// Byte layout:
//   u32 magic 0x46554747 ("GGUF" in file order), u32 version (3), u64 n_tensors, u64 n_kv,
//   n_kv x { string key, u32 value type, value }   string = u64 byte length + bytes (no NUL);
//                                                   array  = u32 element type, u64 count, items
//   n_tensors x { string name, u32 n_dims, u64 ne[n_dims] (fastest dimension first, i.e. the
//                 PyTorch shape reversed), u32 ggml type, u64 offset (from the data section) }
//   zero padding to `alignment`, then the data section: each tensor's bytes, each padded with
//   zeros to a multiple of `alignment`. Offsets are exactly the running padded sizes.
// `alignment` is 32 unless the KV `general.alignment` (u32, a power of two) says otherwise.
#ifndef FEDLORA_ADAPTERS_GGUF_H_
#define FEDLORA_ADAPTERS_GGUF_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fedlora::adapters {

constexpr uint32_t kGgufMagic = 0x46554747;  // bytes 'G' 'G' 'U' 'F'
constexpr uint32_t kGgufVersion = 3;
constexpr uint32_t kGgufDefaultAlignment = 32;
constexpr uint32_t kGgmlQuantVersion = 2;  // general.quantization_version
constexpr size_t kGgmlMaxName = 64;        // tensor names must be shorter
constexpr uint32_t kGgmlMaxDims = 4;

// GGUF metadata value types (gguf-py GGUFValueType).
enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
const char* GgufTypeName(GgufType t);  // "UINT32", "STRING", ...

// ggml tensor types this code reads and writes: unquantized ones (one element per block) and
// Q8_0 (blocks of 32 along ne[0]: an F16 scale d, then 32 int8 q; value = d * q).
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ8_0 = 8,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,
};
const char* GgmlTypeName(GgmlType t);  // "F32", "F16", "Q8_0", ...
// Bytes per block; 0 for a type id this code does not know (e.g. other quantized types).
size_t GgmlTypeSize(uint32_t type_id);
// Elements per block: 32 for Q8_0, 1 for the unquantized types, 0 for unknown ids.
int64_t GgmlBlockSize(uint32_t type_id);
constexpr int64_t kQ8_0Block = 32;
// The data size of a tensor of `type_id` and dims `ne` (GGUF order), or false when the type
// is unknown or ne[0] is not a multiple of the block size (ggml stores whole blocks per row).
bool GgmlTensorBytes(uint32_t type_id, const std::vector<int64_t>& ne, uint64_t* bytes);

// One metadata value. Integers (any width, bool) are held in `i` / `u`, floats in `f`.
struct GgufValue {
  GgufType type = GgufType::kUint32;
  GgufType array_type = GgufType::kUint32;  // element type when type == kArray
  uint64_t u = 0;                           // kUint8/16/32/64, kBool
  int64_t i = 0;                            // kInt8/16/32/64
  double f = 0;                             // kFloat32 (exactly representable), kFloat64
  std::string s;                            // kString
  std::vector<GgufValue> array;             // kArray (elements all of array_type)

  static GgufValue String(std::string v);
  static GgufValue Uint32(uint32_t v);
  static GgufValue Float32(float v);
  // A human-readable rendering ("lora", 8, [1, 2, ...]) for inspect output.
  std::string DebugString() const;
};

struct GgufTensor {
  std::string name;
  uint32_t type = static_cast<uint32_t>(GgmlType::kF32);  // a GgmlType id
  std::vector<int64_t> ne;    // GGUF order: ne[0] is the contiguous (fastest) dimension
  std::vector<uint8_t> data;  // raw little-endian bytes, GgmlTensorBytes(type, ne)
  uint64_t offset = 0;        // set by ReadGguf (relative to the data section)

  int64_t numel() const;
  // The PyTorch-order shape (ne reversed).
  std::vector<int64_t> TorchShape() const;
  // The elements as float32 (F32, F16, BF16; Q8_0 dequantized); INVALID_ARGUMENT for others.
  absl::StatusOr<std::vector<float>> ToFloat() const;
};

struct GgufFile {
  uint32_t version = kGgufVersion;
  uint32_t alignment = kGgufDefaultAlignment;  // from general.alignment when present
  uint64_t data_offset = 0;                    // set by ReadGguf: start of the data section
  std::vector<std::pair<std::string, GgufValue>> metadata;  // in file order
  std::vector<GgufTensor> tensors;                          // in file order

  // nullptr when absent.
  const GgufValue* Find(const std::string& key) const;
  const GgufTensor* FindTensor(const std::string& name) const;
};

// Serialises `file` (version 3; `file.version`, `data_offset` and tensor offsets are ignored
// and recomputed) into bytes. INVALID_ARGUMENT naming the key or tensor for: a duplicate key
// or tensor name, a tensor name of kGgmlMaxName bytes or more, more than kGgmlMaxDims dims, a
// negative dim, an unknown tensor type, data whose size is not GgmlTensorBytes, an array of
// arrays or of mixed types, an alignment that is not a power of two, or a general.alignment
// entry that is not a UINT32 equal to `file.alignment` (it is required when alignment != 32).
absl::StatusOr<std::string> SerializeGguf(const GgufFile& file);

// SerializeGguf, then written atomically to `path` (the old file stays intact on failure).
absl::Status WriteGguf(const std::string& path, const GgufFile& file);

// Reads and validates a GGUF file (version 2 or 3) the way ggml's loader does. NOT_FOUND for
// a missing file; INVALID_ARGUMENT naming the file (and key or tensor) for: a bad magic, an
// unsupported version, truncation anywhere, a duplicate key or tensor name, an unknown value
// type or an array of arrays, general.alignment not a UINT32 power of two, a tensor name of
// 64 bytes or more, more than 4 dims or a negative dim, a tensor type this reader does not
// know (quantized types other than Q8_0, or a Q8_0 row not a whole number of blocks), an
// offset other than the running padded size, or data past the end.
absl::StatusOr<GgufFile> ReadGguf(const std::string& path);
// The same on bytes already in memory; `source` names them in errors.
absl::StatusOr<GgufFile> ParseGguf(const std::string& bytes, const std::string& source);

}  // namespace fedlora::adapters

#endif  // FEDLORA_ADAPTERS_GGUF_H_
