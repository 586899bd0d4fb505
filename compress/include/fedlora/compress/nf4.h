// NF4 (QLoRA, Dettmers et al. 2023): 4-bit codes into the 16-value NormalFloat code book, one
// absmax per block of 64 consecutive weights (row-major order over the whole matrix), with the
// absmax values double-quantized: int8 symmetric around their mean, one float32 scale per
// block of 256 absmax values. docs/compress.md gives every formula.
#ifndef FEDLORA_COMPRESS_NF4_H_
#define FEDLORA_COMPRESS_NF4_H_

#include <array>
#include <memory>

#include "absl/status/statusor.h"
#include "fedlora/compress/packed_weight.h"

namespace fedlora::compress {

// QLoRA's NF4 code book (bitsandbytes `create_normal_map`), ascending; index 7 is exactly 0.
extern const std::array<float, 16> kNf4CodeBook;
constexpr int64_t kNf4Block = 64;
constexpr int64_t kNf4AbsmaxBlock = 256;

class Nf4Weight : public PackedWeight {
 public:
  // INVALID_ARGUMENT when `w` is not 2-D or holds non-finite values.
  static absl::StatusOr<std::shared_ptr<Nf4Weight>> Quantize(const torch::Tensor& w);
  static absl::StatusOr<std::shared_ptr<Nf4Weight>> Load(const std::string& prefix,
                                                         const nlohmann::json& scheme,
                                                         TensorReader* reader);

  int64_t out_features() const override { return out_; }
  int64_t in_features() const override { return in_; }
  torch::Tensor Dense() const override;
  int64_t bytes() const override;
  std::string scheme() const override { return "nf4 block64 dq"; }
  void Export(const std::string& prefix, NamedTensors* out) const override;
  nlohmann::json Scheme() const override;

  // The block absmax values after double quantization, float32 [blocks].
  torch::Tensor Absmax() const;

 private:
  int64_t out_ = 0, in_ = 0;
  torch::Tensor packed_;        // uint8, 4-bit PackBits stream of out*in code-book indices
  torch::Tensor absmax_codes_;  // int8 [ceil(n / 64)]
  torch::Tensor absmax_scale_;  // float32 [ceil(blocks / 256)]
  torch::Tensor absmax_mean_;   // float32 [1]
};

}  // namespace fedlora::compress

#endif  // FEDLORA_COMPRESS_NF4_H_
