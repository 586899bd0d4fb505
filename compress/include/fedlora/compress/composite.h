// Weights built from other packed weights: Q + L R (CALDERA) and a pruning mask on top of any
// packed weight.
#ifndef FEDLORA_COMPRESS_COMPOSITE_H_
#define FEDLORA_COMPRESS_COMPOSITE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "fedlora/compress/hadamard.h"
#include "fedlora/compress/packed_weight.h"

namespace fedlora::compress {

// W' = Q + L R with Q [out, in], L [out, k], R [k, in], each packed. Applied as
// Q x + L (R x): the low-rank part never forms an [out, in] product outside Dense().
// With a RandomHadamard T (incoherence processing), Q + L R approximates W T^T instead and
// W' = (Q + L R) T, applied as Q (T x) + L (R (T x)).
class LowRankWeight : public PackedWeight {
 public:
  LowRankWeight(std::shared_ptr<PackedWeight> q, std::shared_ptr<PackedWeight> l,
                std::shared_ptr<PackedWeight> r,
                std::shared_ptr<const RandomHadamard> rotation = nullptr)
      : q_(std::move(q)), l_(std::move(l)), r_(std::move(r)), rot_(std::move(rotation)) {}
  static absl::StatusOr<std::shared_ptr<LowRankWeight>> Load(const std::string& prefix,
                                                             const nlohmann::json& scheme,
                                                             TensorReader* reader);

  int64_t out_features() const override { return q_->out_features(); }
  int64_t in_features() const override { return q_->in_features(); }
  torch::Tensor Dense() const override;
  torch::Tensor Apply(const torch::Tensor& x) const override;
  int64_t bytes() const override { return q_->bytes() + l_->bytes() + r_->bytes(); }
  std::string scheme() const override;
  void Export(const std::string& prefix, NamedTensors* out) const override;
  nlohmann::json Scheme() const override;

  int64_t rank() const { return r_->out_features(); }
  const PackedWeight& Q() const { return *q_; }
  const PackedWeight& L() const { return *l_; }
  const PackedWeight& R() const { return *r_; }
  const RandomHadamard* rotation() const { return rot_.get(); }

 private:
  std::shared_ptr<PackedWeight> q_, l_, r_;
  std::shared_ptr<const RandomHadamard> rot_;
};

// W' = inner ⊙ mask: pruned weights stay exactly zero whatever the quantization grid gives.
// The mask is a 1-bit PackBits stream of out*in bits (1 = kept), row-major.
class MaskedWeight : public PackedWeight {
 public:
  // `mask`: bool or integer [out, in] with the inner weight's shape.
  MaskedWeight(std::shared_ptr<PackedWeight> inner, const torch::Tensor& mask);
  static absl::StatusOr<std::shared_ptr<MaskedWeight>> Load(const std::string& prefix,
                                                            const nlohmann::json& scheme,
                                                            TensorReader* reader);

  int64_t out_features() const override { return inner_->out_features(); }
  int64_t in_features() const override { return inner_->in_features(); }
  torch::Tensor Dense() const override;
  int64_t bytes() const override { return inner_->bytes() + TensorBytes(mask_); }
  std::string scheme() const override;
  void Export(const std::string& prefix, NamedTensors* out) const override;
  nlohmann::json Scheme() const override;

  torch::Tensor Mask() const;  // bool [out, in]
  const PackedWeight& inner() const { return *inner_; }

 private:
  MaskedWeight() = default;
  std::shared_ptr<PackedWeight> inner_;
  torch::Tensor mask_;  // uint8 stream
};

}  // namespace fedlora::compress

#endif  // FEDLORA_COMPRESS_COMPOSITE_H_
