#include "fedlora/compress/nf4.h"

#include <ATen/Parallel.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"

namespace fedlora::compress {

const std::array<float, 16> kNf4CodeBook = {-1.0f,
                                            -0.6961928009986877f,
                                            -0.5250730514526367f,
                                            -0.39491748809814453f,
                                            -0.28444138169288635f,
                                            -0.18477343022823334f,
                                            -0.09105003625154495f,
                                            0.0f,
                                            0.07958029955625534f,
                                            0.16093020141124725f,
                                            0.24611230194568634f,
                                            0.33791524171829224f,
                                            0.44070982933044434f,
                                            0.5626170039176941f,
                                            0.7229568362236023f,
                                            1.0f};

namespace {

// absmax' = mean + scale * code / 127, evaluated left to right in float32.
inline float DecodeAbsmax(int8_t code, float scale, float mean) {
  return mean + scale * static_cast<float>(code) / 127.0f;
}

}  // namespace

absl::StatusOr<std::shared_ptr<Nf4Weight>> Nf4Weight::Quantize(const torch::Tensor& w) {
  if (w.dim() != 2) return absl::InvalidArgumentError("nf4: weight must be 2-D");
  torch::NoGradGuard no_grad;
  torch::Tensor flat = w.detach().to(torch::kFloat).contiguous().reshape({-1});
  if (!torch::isfinite(flat).all().item<bool>()) {
    return absl::InvalidArgumentError("nf4: weight has NaN/Inf entries (hint: corrupt model)");
  }
  const int64_t n = flat.numel();
  const int64_t blocks = (n + kNf4Block - 1) / kNf4Block;
  const int64_t blocks2 = (blocks + kNf4AbsmaxBlock - 1) / kNf4AbsmaxBlock;
  const float* x = flat.data_ptr<float>();
  std::vector<float> absmax(blocks, 0.0f);
  for (int64_t i = 0; i < n; ++i)
    absmax[i / kNf4Block] = std::max(absmax[i / kNf4Block], std::fabs(x[i]));
  double sum = 0;
  for (float a : absmax) sum += a;
  auto r = std::make_shared<Nf4Weight>();
  r->out_ = w.size(0);
  r->in_ = w.size(1);
  r->absmax_mean_ = torch::full({1}, static_cast<float>(sum / blocks), torch::kFloat);
  const float mean = r->absmax_mean_.item<float>();
  r->absmax_scale_ = torch::zeros({blocks2}, torch::kFloat);
  r->absmax_codes_ = torch::zeros({blocks}, torch::kInt8);
  float* s2 = r->absmax_scale_.data_ptr<float>();
  int8_t* c2 = r->absmax_codes_.data_ptr<int8_t>();
  for (int64_t b = 0; b < blocks; ++b) {
    s2[b / kNf4AbsmaxBlock] = std::max(s2[b / kNf4AbsmaxBlock], std::fabs(absmax[b] - mean));
  }
  for (int64_t b = 0; b < blocks; ++b) {
    const float s = s2[b / kNf4AbsmaxBlock];
    if (s > 0) {
      const float v = (absmax[b] - mean) / s * 127.0f;
      const float q = std::copysign(std::floor(std::fabs(v) + 0.5f), v);
      c2[b] = static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, q)));
    }
  }
  torch::Tensor codes = torch::empty({n}, torch::kInt32);
  int32_t* q = codes.data_ptr<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t b = i / kNf4Block;
    const float a = DecodeAbsmax(c2[b], s2[b / kNf4AbsmaxBlock], mean);
    if (!(a > 0)) {
      q[i] = 7;
      continue;
    }
    const float v = x[i] / a;
    int best = 0;
    float best_d = std::fabs(v - kNf4CodeBook[0]);
    for (int k = 1; k < 16; ++k) {
      const float d = std::fabs(v - kNf4CodeBook[k]);
      if (d < best_d) {
        best_d = d;
        best = k;
      }
    }
    q[i] = best;
  }
  r->packed_ = PackBits(codes, 4);
  return r;
}

torch::Tensor Nf4Weight::Absmax() const {
  const int64_t blocks = absmax_codes_.numel();
  torch::Tensor out = torch::empty({blocks}, torch::kFloat);
  const int8_t* c = absmax_codes_.data_ptr<int8_t>();
  const float* s = absmax_scale_.data_ptr<float>();
  const float mean = absmax_mean_.data_ptr<float>()[0];
  float* dst = out.data_ptr<float>();
  for (int64_t b = 0; b < blocks; ++b) dst[b] = DecodeAbsmax(c[b], s[b / kNf4AbsmaxBlock], mean);
  return out;
}

torch::Tensor Nf4Weight::Dense() const {
  torch::Tensor absmax = Absmax();
  const float* a = absmax.data_ptr<float>();
  const int64_t n = out_ * in_;
  torch::Tensor out = torch::empty({out_, in_}, torch::kFloat);
  float* dst = out.data_ptr<float>();
  const uint8_t* p = packed_.data_ptr<uint8_t>();
  const int64_t nbytes = packed_.numel();
  const int64_t blocks = absmax.numel();
  at::parallel_for(0, blocks, 64, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const float s = a[b] > 0 ? a[b] : 0.0f;
      const int64_t e = std::min(n, (b + 1) * kNf4Block);
      for (int64_t i = b * kNf4Block; i < e; ++i)
        dst[i] = kNf4CodeBook[ReadCode(p, nbytes, i, 4)] * s;
    }
  });
  return out;
}

int64_t Nf4Weight::bytes() const {
  return TensorBytes(packed_) + TensorBytes(absmax_codes_) + TensorBytes(absmax_scale_) +
         TensorBytes(absmax_mean_);
}

void Nf4Weight::Export(const std::string& prefix, NamedTensors* out) const {
  out->emplace_back(prefix + ".codes", packed_);
  out->emplace_back(prefix + ".absmax_codes", absmax_codes_);
  out->emplace_back(prefix + ".absmax_scale", absmax_scale_);
  out->emplace_back(prefix + ".absmax_mean", absmax_mean_);
}

nlohmann::json Nf4Weight::Scheme() const {
  return {{"format", "nf4"},
          {"block", kNf4Block},
          {"absmax_block", kNf4AbsmaxBlock},
          {"shape", {out_, in_}}};
}

absl::StatusOr<std::shared_ptr<Nf4Weight>> Nf4Weight::Load(const std::string& prefix,
                                                           const nlohmann::json& scheme,
                                                           TensorReader* reader) {
  auto r = std::make_shared<Nf4Weight>();
  r->out_ = scheme["shape"][0].get<int64_t>();
  r->in_ = scheme["shape"][1].get<int64_t>();
  const int64_t n = r->out_ * r->in_;
  const int64_t blocks = (n + kNf4Block - 1) / kNf4Block;
  const int64_t blocks2 = (blocks + kNf4AbsmaxBlock - 1) / kNf4AbsmaxBlock;
  FEDLORA_ASSIGN_OR_RETURN(r->packed_,
                           reader->Read(prefix + ".codes", io::DType::kU8, {(n + 1) / 2}));
  FEDLORA_ASSIGN_OR_RETURN(r->absmax_codes_,
                           reader->Read(prefix + ".absmax_codes", io::DType::kI8, {blocks}));
  FEDLORA_ASSIGN_OR_RETURN(r->absmax_scale_,
                           reader->Read(prefix + ".absmax_scale", io::DType::kF32, {blocks2}));
  FEDLORA_ASSIGN_OR_RETURN(r->absmax_mean_,
                           reader->Read(prefix + ".absmax_mean", io::DType::kF32, {1}));
  return r;
}

}  // namespace fedlora::compress
