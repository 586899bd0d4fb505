// int8 arithmetic for a compressed base: the frozen projections multiply in int8 (oneDNN's
// matmul: AMX, AVX-512 VNNI or AVX2 kernels) instead of being expanded to float32 first.
//
// The weight is requantized once, lazily, to int8 per output row (1 byte a weight, beside
// the packed codes); each product quantizes its input's rows on their own scales. Forward
// (x W^T) and the input gradient of training (dy W, the weight's row scales folded into dy)
// use the same codes. Products of fewer than kInt8MinRows rows (decoding a token) keep the
// packed format's own path, so a device that only suggests never builds the int8 copy.
//
// Each product equals an emulation of this rounding to float rounding; against the float32
// product, heavy-tailed test rows err by 2-3% on average, and on the 25.7M base perplexity
// moves by +0.06% (tests/compress/int8_compute_test.cc; docs/compress.md, "int8 arithmetic").
#ifndef FEDLORA_COMPRESS_INT8_COMPUTE_H_
#define FEDLORA_COMPRESS_INT8_COMPUTE_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "fedlora/compress/packed_weight.h"

namespace fedlora::model {
class LlamaModel;
}

namespace fedlora::compress {

namespace internal {
class Int8Matrix;
}

inline constexpr int64_t kInt8MinRows = 16;

enum class Int8Mode { kAuto, kOn, kOff };

// FEDLORA_INT8_COMPUTE: "auto" (default: on where oneDNN has int8 kernels wider than float32
// FMAs, AVX2 and up), "on" or "off". INVALID_ARGUMENT for anything else.
absl::StatusOr<Int8Mode> Int8ModeFromEnv();

// The instruction set oneDNN runs int8 products on ("avx512_core_amx", "avx2", ...); "" when
// none of them (auto then stays off).
std::string Int8ComputeIsa();

// The largest int8 weight code on this machine: 127 with VNNI or AMX, 63 on AVX2 and
// AVX-512 without VNNI, whose kernels add pairs of products in 16 bits and would saturate.
int Int8WeightLevels();

// Whether `mode` turns int8 arithmetic on on this machine.
bool Int8ComputeEnabled(Int8Mode mode);

// A packed weight that multiplies in int8. Saving, Dense() and small products are the inner
// weight's; bytes() counts the int8 copy once it exists.
class Int8ComputeWeight final : public PackedWeight {
 public:
  explicit Int8ComputeWeight(std::shared_ptr<const PackedWeight> inner);
  ~Int8ComputeWeight() override;

  int64_t out_features() const override { return inner_->out_features(); }
  int64_t in_features() const override { return inner_->in_features(); }
  torch::Tensor Dense() const override { return inner_->Dense(); }
  torch::Tensor Apply(const torch::Tensor& x) const override;
  torch::Tensor ApplyTransposed(const torch::Tensor& dy) const override;
  int64_t bytes() const override;
  std::string scheme() const override { return inner_->scheme() + " (int8 arithmetic)"; }
  void Export(const std::string& prefix, NamedTensors* out) const override {
    inner_->Export(prefix, out);
  }
  nlohmann::json Scheme() const override { return inner_->Scheme(); }

  const PackedWeight& inner() const { return *inner_; }
  // True once a large product has built the int8 copy.
  bool built() const;

 private:
  const internal::Int8Matrix& Matrix() const;

  std::shared_ptr<const PackedWeight> inner_;
  mutable std::once_flag once_;
  mutable std::unique_ptr<internal::Int8Matrix> matrix_;
  mutable std::atomic<bool> built_{false};
};

// Wraps every packed projection of `model` in an Int8ComputeWeight (once); returns how many.
int UseInt8Compute(model::LlamaModel& model);

}  // namespace fedlora::compress

#endif  // FEDLORA_COMPRESS_INT8_COMPUTE_H_
