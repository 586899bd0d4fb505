// The common base of every compressed weight format, densely packed bit streams, and the
// reader that loads packed tensors back from a safetensors file.
#ifndef FEDLORA_COMPRESS_PACKED_WEIGHT_H_
#define FEDLORA_COMPRESS_PACKED_WEIGHT_H_

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/io/safetensors.h"
#include "fedlora/model/frozen_weight.h"
#include "nlohmann/json.hpp"

namespace fedlora::compress {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// A model::FrozenWeight that can also be written to and read from a checkpoint.
class PackedWeight : public model::FrozenWeight {
 public:
  // Appends every tensor this weight consists of, named `prefix` + "." + component
  // (e.g. "model.layers.0.mlp.up_proj.codes"), in their stored dtypes.
  virtual void Export(const std::string& prefix, NamedTensors* out) const = 0;
  // {"format": ..., "shape": [out, in], ...}: everything needed, with the tensors, to rebuild it.
  virtual nlohmann::json Scheme() const = 0;
  // 8 * bytes() / (out * in): every stored bit counted (codes, scales, mins, factors, masks).
  double bits_per_weight() const;
};

// Packs codes (integers in [0, 2^bits), any integer dtype, row-major order) into a dense
// little-endian bit stream: code i occupies stream bits [i*bits, (i+1)*bits), least
// significant bit first, stream bit k being bit (k mod 8) of byte k / 8. Returns uint8
// [ceil(n * bits / 8)]; unused high bits of the last byte are 0. bits in 1..8.
torch::Tensor PackBits(const torch::Tensor& codes, int bits);

// The inverse: `count` codes as uint8 [count].
torch::Tensor UnpackBits(const torch::Tensor& packed, int bits, int64_t count);

// Code i of a stream of `nbytes` bytes made by PackBits.
inline uint32_t ReadCode(const uint8_t* p, int64_t nbytes, int64_t i, int bits) {
  const int64_t pos = i * bits;
  const int64_t byte = pos >> 3;
  const int shift = static_cast<int>(pos & 7);
  uint32_t v = p[byte];
  if (shift + bits > 8 && byte + 1 < nbytes) v |= static_cast<uint32_t>(p[byte + 1]) << 8;
  return (v >> shift) & ((1u << bits) - 1u);
}

// Bytes of a tensor's elements.
int64_t TensorBytes(const torch::Tensor& t);

// Loads packed tensors from an open checkpoint file, remembering which ones were used.
class TensorReader {
 public:
  explicit TensorReader(const io::SafetensorsFile* file) : file_(file) {}
  // A copy of tensor `name`. INVALID_ARGUMENT naming the file and tensor (with a hint) when it
  // is missing or its dtype or shape differ from `dtype` / `shape`.
  absl::StatusOr<torch::Tensor> Read(const std::string& name, io::DType dtype,
                                     const std::vector<int64_t>& shape);
  void MarkUsed(const std::string& name) { used_.insert(name); }
  const std::set<std::string>& used() const { return used_; }
  const std::string& path() const { return file_->path(); }

 private:
  const io::SafetensorsFile* file_;
  std::set<std::string> used_;
};

// Rebuilds the weight `scheme` describes from tensors named `prefix` + ".<component>".
// INVALID_ARGUMENT naming the tensor when the scheme is malformed (unknown format, bits or
// group out of range, shape mismatch) or a tensor is missing, mistyped or mis-shaped.
absl::StatusOr<std::shared_ptr<PackedWeight>> LoadPacked(const std::string& prefix,
                                                         const nlohmann::json& scheme,
                                                         TensorReader* reader);

}  // namespace fedlora::compress

#endif  // FEDLORA_COMPRESS_PACKED_WEIGHT_H_
