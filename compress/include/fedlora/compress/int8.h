// int8 per-output-channel symmetric quantization:
//   scale_r = max_c |w[r, c]| / 127 (float32), rounded to float16;
//   q = clamp(sign(v) * floor(|v| + 0.5), -127, 127) with v = w / scale16 (q = 0 if scale16 == 0);
//   w' = scale16 * q.
// Stored: codes int8 [out, in], scales float16 [out].
#ifndef FEDLORA_COMPRESS_INT8_H_
#define FEDLORA_COMPRESS_INT8_H_

#include <memory>

#include "absl/status/statusor.h"
#include "fedlora/compress/packed_weight.h"

namespace fedlora::compress {

class Int8Weight : public PackedWeight {
 public:
  // INVALID_ARGUMENT when `w` is not 2-D or a scale is not finite in float16.
  static absl::StatusOr<std::shared_ptr<Int8Weight>> Quantize(const torch::Tensor& w);
  static absl::StatusOr<std::shared_ptr<Int8Weight>> Load(const std::string& prefix,
                                                          const nlohmann::json& scheme,
                                                          TensorReader* reader);

  int64_t out_features() const override { return codes_.size(0); }
  int64_t in_features() const override { return codes_.size(1); }
  torch::Tensor Dense() const override;
  int64_t bytes() const override { return TensorBytes(codes_) + TensorBytes(scales_); }
  std::string scheme() const override { return "int8 per-channel"; }
  void Export(const std::string& prefix, NamedTensors* out) const override;
  nlohmann::json Scheme() const override;

  const torch::Tensor& codes() const { return codes_; }
  const torch::Tensor& scales() const { return scales_; }

 private:
  torch::Tensor codes_;   // int8 [out, in]
  torch::Tensor scales_;  // float16 [out]
};

}  // namespace fedlora::compress

#endif  // FEDLORA_COMPRESS_INT8_H_
