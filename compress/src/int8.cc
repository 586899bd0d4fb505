#include "fedlora/compress/int8.h"

#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"

namespace fedlora::compress {

absl::StatusOr<std::shared_ptr<Int8Weight>> Int8Weight::Quantize(const torch::Tensor& w) {
  if (w.dim() != 2) return absl::InvalidArgumentError("int8: weight must be 2-D");
  torch::NoGradGuard no_grad;
  torch::Tensor wf = w.detach().to(torch::kFloat);
  torch::Tensor scale = (std::get<0>(wf.abs().max(1)) / 127.0f).to(torch::kHalf);
  torch::Tensor s = scale.to(torch::kFloat).unsqueeze(1);
  if (!torch::isfinite(s).all().item<bool>()) {
    return absl::InvalidArgumentError(
        "int8: a row's scale is not finite in float16 (hint: NaN/Inf or huge weights)");
  }
  torch::Tensor v = wf / s;
  torch::Tensor q = torch::sign(v) * torch::floor(v.abs() + 0.5f);
  q = torch::where(s > 0, q, torch::zeros_like(q)).clamp(-127, 127);
  auto r = std::make_shared<Int8Weight>();
  r->codes_ = q.to(torch::kInt8).contiguous();
  r->scales_ = scale.contiguous();
  return r;
}

torch::Tensor Int8Weight::Dense() const {
  return codes_.to(torch::kFloat).mul_(scales_.to(torch::kFloat).unsqueeze(1));
}

void Int8Weight::Export(const std::string& prefix, NamedTensors* out) const {
  out->emplace_back(prefix + ".codes", codes_);
  out->emplace_back(prefix + ".scales", scales_);
}

nlohmann::json Int8Weight::Scheme() const {
  return {{"format", "int8"}, {"shape", {out_features(), in_features()}}};
}

absl::StatusOr<std::shared_ptr<Int8Weight>> Int8Weight::Load(const std::string& prefix,
                                                             const nlohmann::json& scheme,
                                                             TensorReader* reader) {
  const int64_t out = scheme["shape"][0].get<int64_t>(), in = scheme["shape"][1].get<int64_t>();
  auto r = std::make_shared<Int8Weight>();
  FEDLORA_ASSIGN_OR_RETURN(r->codes_, reader->Read(prefix + ".codes", io::DType::kI8, {out, in}));
  FEDLORA_ASSIGN_OR_RETURN(r->scales_, reader->Read(prefix + ".scales", io::DType::kF16, {out}));
  return r;
}

}  // namespace fedlora::compress
