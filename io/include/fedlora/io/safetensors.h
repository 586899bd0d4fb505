// Reader and writer for the safetensors format (https://github.com/huggingface/safetensors):
//   [u64 little-endian N][N bytes of JSON header, padded with spaces to a multiple of 8][data]
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the start of the data section) plus an optional "__metadata__" string map.
// Offsets must tile the data section exactly: sorted by begin they are contiguous from 0, and
// 8 + N + last end == file size. No torch dependency: callers convert views to tensors.
#ifndef FEDLORA_IO_SAFETENSORS_H_
#define FEDLORA_IO_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fedlora::io {

enum class DType { kBool, kU8, kI8, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kF64, kI64, kU64 };

// "F32", "BF16", ... as spelled in safetensors headers.
const char* DTypeName(DType dtype);
absl::StatusOr<DType> ParseDType(const std::string& name);
size_t DTypeSize(DType dtype);

// A tensor inside an open file (or a caller's buffer for writing). `data` is not owned.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const;
};

// A safetensors file opened by mmap. Tensor data stays in the mapping; views are valid for
// the lifetime of this object.
class SafetensorsFile {
 public:
  // Opens and fully validates `path`. Errors (INVALID_ARGUMENT unless noted) name the file,
  // the tensor where relevant, and what was expected:
  //   NOT_FOUND: missing file; file shorter than 8 bytes; header length past the end of file;
  //   header not valid JSON or not an object; unknown dtype; bad shape (negative dims);
  //   data_offsets not [begin, end] with begin <= end; shape x dtype size != end - begin;
  //   offsets that overlap or leave gaps; trailing bytes or a short data section.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // Tensors in header order (sorted by name).
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorView* Find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> by_name_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (names must be unique; nbytes must equal numel x dtype size) in name order,
// header padded with spaces to 8 bytes, offsets contiguous from 0, optional metadata.
// Written atomically (temp file + rename); a full disk leaves any old file intact.
absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorView>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

// Converts `count` elements of an F32, F16 or BF16 buffer to float32 (little-endian input).
// INVALID_ARGUMENT for other dtypes.
absl::Status ConvertToF32(DType dtype, const uint8_t* src, size_t count, float* dst);

// IEEE half / bfloat16 bit patterns to float and back (round to nearest even).
float HalfToFloat(uint16_t h);
float BFloat16ToFloat(uint16_t b);
uint16_t FloatToHalf(float f);
uint16_t FloatToBFloat16(float f);

}  // namespace fedlora::io

#endif  // FEDLORA_IO_SAFETENSORS_H_
