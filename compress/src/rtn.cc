#include "fedlora/compress/rtn.h"

#include <ATen/Parallel.h>

#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"
#include "packed_gemv.h"

namespace fedlora::compress {

absl::Status RtnGroupParams(const torch::Tensor& w, int bits, torch::Tensor* scale,
                            torch::Tensor* min) {
  torch::Tensor wf = w.to(torch::kFloat);
  torch::Tensor mn = std::get<0>(wf.min(1));
  torch::Tensor mx = std::get<0>(wf.max(1));
  torch::Tensor s = (mx - mn) / static_cast<float>((1 << bits) - 1);
  *scale = s.to(torch::kHalf).to(torch::kFloat);
  *min = mn.to(torch::kHalf).to(torch::kFloat);
  if (!torch::isfinite(*scale).all().item<bool>() || !torch::isfinite(*min).all().item<bool>()) {
    return absl::InvalidArgumentError(
        "rtn: a group's scale or min is not finite in float16 (hint: the weights contain "
        "NaN/Inf or values beyond 65504)");
  }
  return absl::OkStatus();
}

torch::Tensor RtnCodes(const torch::Tensor& w, const torch::Tensor& scale, const torch::Tensor& min,
                       int bits) {
  torch::Tensor q = torch::floor((w - min) / scale + 0.5f);
  q = torch::where(scale > 0, q, torch::zeros_like(q));
  return q.clamp(0, (1 << bits) - 1).to(torch::kInt32);
}

absl::StatusOr<std::shared_ptr<RtnWeight>> RtnWeight::Quantize(const torch::Tensor& w, int bits,
                                                               int group) {
  if (bits < 1 || bits > 8 || group < 1 || w.dim() != 2) {
    return absl::InvalidArgumentError(absl::StrCat("rtn: bits ", bits, " / group ", group,
                                                   " out of range (hint: bits 2..8, group >= 1)"));
  }
  torch::NoGradGuard no_grad;
  torch::Tensor wf = w.detach().to(torch::kFloat).contiguous();
  const int64_t out = wf.size(0), in = wf.size(1);
  const int64_t groups = (in + group - 1) / group;
  torch::Tensor codes = torch::empty({out, in}, torch::kInt32);
  torch::Tensor scales = torch::empty({out, groups}, torch::kFloat);
  torch::Tensor mins = torch::empty({out, groups}, torch::kFloat);
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t c0 = g * group, n = std::min<int64_t>(group, in - c0);
    torch::Tensor block = wf.narrow(1, c0, n);
    torch::Tensor s, m;
    FEDLORA_RETURN_IF_ERROR(RtnGroupParams(block, bits, &s, &m));
    codes.narrow(1, c0, n).copy_(RtnCodes(block, s.unsqueeze(1), m.unsqueeze(1), bits));
    scales.select(1, g).copy_(s);
    mins.select(1, g).copy_(m);
  }
  return FromCodes(codes, scales.to(torch::kHalf), mins.to(torch::kHalf), bits, group);
}

std::shared_ptr<RtnWeight> RtnWeight::FromCodes(const torch::Tensor& codes,
                                                const torch::Tensor& scales,
                                                const torch::Tensor& mins, int bits, int group) {
  auto r = std::shared_ptr<RtnWeight>(new RtnWeight());
  r->bits_ = bits;
  r->group_ = group;
  r->out_ = codes.size(0);
  r->in_ = codes.size(1);
  r->packed_ = PackBits(codes, bits);
  r->scales_ = scales.to(torch::kHalf).contiguous();
  r->mins_ = mins.to(torch::kHalf).contiguous();
  return r;
}

torch::Tensor RtnWeight::Apply(const torch::Tensor& x) const {
  const int64_t rows = in_ > 0 ? x.numel() / in_ : 0;
  if (bits_ != 4 || in_ % 2 != 0 || group_ % 2 != 0 || x.scalar_type() != torch::kFloat ||
      x.dim() < 1 || x.size(-1) != in_ || rows < 1 || rows > internal::kPackedGemvMaxRows) {
    return FrozenWeight::Apply(x);
  }
  torch::Tensor xc = x.reshape({rows, in_}).contiguous();
  torch::Tensor y = torch::empty({rows, out_}, torch::kFloat);
  internal::Gemv4(xc.data_ptr<float>(), rows, in_, packed_.data_ptr<uint8_t>(),
                  scales_.data_ptr<at::Half>(), mins_.data_ptr<at::Half>(), out_, group_,
                  y.data_ptr<float>());
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = out_;
  return y.view(shape);
}

torch::Tensor RtnWeight::Dense() const {
  torch::Tensor out = torch::empty({out_, in_}, torch::kFloat);
  float* dst = out.data_ptr<float>();
  const uint8_t* p = packed_.data_ptr<uint8_t>();
  const int64_t nbytes = packed_.numel();
  const at::Half* sc = scales_.data_ptr<at::Half>();
  const at::Half* mn = mins_.data_ptr<at::Half>();
  const int64_t groups = scales_.size(1), in = in_, group = group_;
  const int bits = bits_;
  if (bits == 4 && in % 2 == 0 && group % 2 == 0) {
    // Fast path: rows start on a byte boundary; two codes per byte, low nibble first.
    at::parallel_for(0, out_, 8, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        internal::ExpandRow4(p + r * (in / 2), sc + r * groups, mn + r * groups, in, group,
                             dst + r * in);
      }
    });
    return out;
  }
  at::parallel_for(0, out_, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t g = 0; g < groups; ++g) {
        const float s = static_cast<float>(sc[r * groups + g]);
        const float m = static_cast<float>(mn[r * groups + g]);
        const int64_t c1 = std::min(in, (g + 1) * group);
        for (int64_t c = g * group; c < c1; ++c) {
          const int64_t i = r * in + c;
          dst[i] = m + s * static_cast<float>(ReadCode(p, nbytes, i, bits));
        }
      }
    }
  });
  return out;
}

torch::Tensor RtnWeight::Codes() const {
  return UnpackBits(packed_, bits_, out_ * in_).view({out_, in_});
}

int64_t RtnWeight::bytes() const {
  return TensorBytes(packed_) + TensorBytes(scales_) + TensorBytes(mins_);
}

std::string RtnWeight::scheme() const { return absl::StrCat("rtn b", bits_, " g", group_); }

void RtnWeight::Export(const std::string& prefix, NamedTensors* out) const {
  out->emplace_back(prefix + ".codes", packed_);
  out->emplace_back(prefix + ".scales", scales_);
  out->emplace_back(prefix + ".mins", mins_);
}

nlohmann::json RtnWeight::Scheme() const {
  return {{"format", "rtn"}, {"bits", bits_}, {"group", group_}, {"shape", {out_, in_}}};
}

absl::StatusOr<std::shared_ptr<RtnWeight>> RtnWeight::Load(const std::string& prefix,
                                                           const nlohmann::json& scheme,
                                                           TensorReader* reader) {
  auto r = std::shared_ptr<RtnWeight>(new RtnWeight());
  r->bits_ = scheme.value("bits", 0);
  r->group_ = scheme.value("group", 0);
  r->out_ = scheme["shape"][0].get<int64_t>();
  r->in_ = scheme["shape"][1].get<int64_t>();
  if (r->bits_ < 1 || r->bits_ > 8 || r->group_ < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        reader->path(), ": '", prefix, "': rtn bits ", r->bits_, " / group ", r->group_,
        " out of range; allowed bits 1..8, group >= 1 (hint: compression.json is corrupt)"));
  }
  const int64_t groups = (r->in_ + r->group_ - 1) / r->group_;
  const int64_t nbytes = (r->out_ * r->in_ * r->bits_ + 7) / 8;
  FEDLORA_ASSIGN_OR_RETURN(r->packed_, reader->Read(prefix + ".codes", io::DType::kU8, {nbytes}));
  FEDLORA_ASSIGN_OR_RETURN(r->scales_,
                           reader->Read(prefix + ".scales", io::DType::kF16, {r->out_, groups}));
  FEDLORA_ASSIGN_OR_RETURN(r->mins_,
                           reader->Read(prefix + ".mins", io::DType::kF16, {r->out_, groups}));
  return r;
}

}  // namespace fedlora::compress
