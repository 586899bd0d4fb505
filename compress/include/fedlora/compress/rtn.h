// Group-wise asymmetric round-to-nearest (RTN) quantization, 1..8 bits (used with 2, 3, 4).
//
// Per row, per group of `group` consecutive input columns (the last group of a row is shorter
// when in % group != 0), in float32:
//   scale = (max - min) / (2^b - 1), then scale and min are rounded to float16 (nearest even);
//   q = clamp(floor((w - min16) / scale16 + 0.5), 0, 2^b - 1)   (q = 0 when scale16 == 0);
//   w' = min16 + scale16 * q.
// Stored: codes as a PackBits stream of out*in codes (row-major), scales and mins as float16
// [out, ceil(in / group)]. docs/compress.md has the byte layout.
#ifndef FEDLORA_COMPRESS_RTN_H_
#define FEDLORA_COMPRESS_RTN_H_

#include <memory>

#include "absl/status/statusor.h"
#include "fedlora/compress/packed_weight.h"

namespace fedlora::compress {

class RtnWeight : public PackedWeight {
 public:
  // Quantizes float [out, in] `w`. INVALID_ARGUMENT for bits outside 1..8, group < 1, or a
  // group whose scale or min overflows float16 (non-finite weights).
  static absl::StatusOr<std::shared_ptr<RtnWeight>> Quantize(const torch::Tensor& w, int bits,
                                                             int group);
  // Wraps already computed codes (integer [out, in]) and float16 scales / mins [out, groups].
  static std::shared_ptr<RtnWeight> FromCodes(const torch::Tensor& codes,
                                              const torch::Tensor& scales,
                                              const torch::Tensor& mins, int bits, int group);
  // Rebuilds from a checkpoint (see LoadPacked).
  static absl::StatusOr<std::shared_ptr<RtnWeight>> Load(const std::string& prefix,
                                                         const nlohmann::json& scheme,
                                                         TensorReader* reader);

  int64_t out_features() const override { return out_; }
  int64_t in_features() const override { return in_; }
  torch::Tensor Dense() const override;
  // For a few rows of float32 x with 4-bit codes (decoding a token): straight from the codes,
  // without expanding W (compress/src/packed_gemv.h); otherwise Dense() and the BLAS.
  torch::Tensor Apply(const torch::Tensor& x) const override;
  int64_t bytes() const override;
  std::string scheme() const override;
  void Export(const std::string& prefix, NamedTensors* out) const override;
  nlohmann::json Scheme() const override;

  int bits() const { return bits_; }
  int group() const { return group_; }
  torch::Tensor Codes() const;  // uint8 [out, in]
  const torch::Tensor& scales() const { return scales_; }
  const torch::Tensor& mins() const { return mins_; }

 private:
  int bits_ = 4, group_ = 64;
  int64_t out_ = 0, in_ = 0;
  torch::Tensor packed_;         // uint8 stream
  torch::Tensor scales_, mins_;  // float16 [out, groups]
};

// The RTN grid of one group: for w [rows, n], float16-rounded scale and min per row, returned
// as float32 [rows]. INVALID_ARGUMENT when they are not finite in float16.
absl::Status RtnGroupParams(const torch::Tensor& w, int bits, torch::Tensor* scale,
                            torch::Tensor* min);
// Codes (int32, same shape as w) of values w on the grid (scale, min broadcast against w).
torch::Tensor RtnCodes(const torch::Tensor& w, const torch::Tensor& scale, const torch::Tensor& min,
                       int bits);

}  // namespace fedlora::compress

#endif  // FEDLORA_COMPRESS_RTN_H_
