#include "fedlora/compress/gptq.h"

#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"

namespace fedlora::compress {

double HessianError(const torch::Tensor& w, const torch::Tensor& w_hat, const torch::Tensor& h) {
  torch::NoGradGuard no_grad;
  torch::Tensor e = (w.to(torch::kDouble) - w_hat.to(torch::kDouble));
  return (e.mm(h.to(torch::kDouble)) * e).sum().item<double>();
}

absl::StatusOr<torch::Tensor> InverseHessianFactor(const torch::Tensor& h, double damp) {
  torch::NoGradGuard no_grad;
  torch::Tensor hd = h.to(torch::kDouble).clone();
  torch::Tensor diag = hd.diagonal();
  diag.masked_fill_(diag == 0, 1.0);
  const double mean = diag.mean().item<double>();
  double d = damp;
  for (int attempt = 0; attempt < 7; ++attempt, d *= 10) {
    torch::Tensor hh = hd + torch::eye(hd.size(0), torch::kDouble) * (d * mean);
    auto [l, info] = at::linalg_cholesky_ex(hh);
    if (info.item<int64_t>() != 0) continue;
    torch::Tensor inv = at::cholesky_inverse(l);
    auto [u, info2] = at::linalg_cholesky_ex(inv, /*upper=*/true);
    if (info2.item<int64_t>() != 0) continue;
    return u;
  }
  return absl::FailedPreconditionError(
      "gptq: the calibration Hessian is not positive definite even with 1e4x damping (hint: "
      "give more or more varied calibration text with --calib)");
}

absl::StatusOr<std::shared_ptr<RtnWeight>> GptqQuantize(const torch::Tensor& w,
                                                        const torch::Tensor& h,
                                                        const GptqOptions& o,
                                                        const torch::Tensor& mask) {
  if (w.dim() != 2 || h.dim() != 2 || h.size(0) != w.size(1) || h.size(1) != w.size(1)) {
    return absl::InvalidArgumentError("gptq: H must be [in, in] for a weight [out, in]");
  }
  if (o.bits < 1 || o.bits > 8 || o.group < 1 || o.block < 1) {
    return absl::InvalidArgumentError(absl::StrCat("gptq: bits ", o.bits, " / group ", o.group,
                                                   " out of range (hint: bits 2..8)"));
  }
  torch::NoGradGuard no_grad;
  const int64_t rows = w.size(0), cols = w.size(1);
  FEDLORA_ASSIGN_OR_RETURN(torch::Tensor hinv_d, InverseHessianFactor(h, o.damp));
  torch::Tensor hinv = hinv_d.to(torch::kFloat);
  torch::Tensor wk = w.detach().to(torch::kFloat).clone();
  torch::Tensor dead = h.diagonal() == 0;
  wk.index_put_({torch::indexing::Slice(), dead}, 0.0f);
  torch::Tensor maskf = mask.defined() ? mask.to(torch::kFloat) : torch::Tensor();
  const int64_t groups = (cols + o.group - 1) / o.group;
  torch::Tensor codes = torch::zeros({rows, cols}, torch::kInt32);
  torch::Tensor scales = torch::zeros({rows, groups}, torch::kFloat);
  torch::Tensor mins = torch::zeros({rows, groups}, torch::kFloat);
  const int64_t block = ((std::max(o.block, o.group) + o.group - 1) / o.group) * o.group;
  torch::Tensor scale, min;
  for (int64_t i1 = 0; i1 < cols; i1 += block) {
    const int64_t count = std::min(block, cols - i1);
    torch::Tensor w1 = wk.narrow(1, i1, count).clone();
    torch::Tensor err1 = torch::zeros({rows, count}, torch::kFloat);
    torch::Tensor hinv1 = hinv.narrow(0, i1, count).narrow(1, i1, count);
    for (int64_t i = 0; i < count; ++i) {
      const int64_t col = i1 + i;
      if (col % o.group == 0) {
        const int64_t n = std::min<int64_t>(o.group, cols - col);
        FEDLORA_RETURN_IF_ERROR(RtnGroupParams(w1.narrow(1, i, n), o.bits, &scale, &min));
        scales.select(1, col / o.group).copy_(scale);
        mins.select(1, col / o.group).copy_(min);
      }
      torch::Tensor wc = w1.select(1, i);
      torch::Tensor q = RtnCodes(wc, scale, min, o.bits);
      codes.select(1, col).copy_(q);
      torch::Tensor deq = min + scale * q.to(torch::kFloat);
      if (maskf.defined()) deq = deq * maskf.select(1, col);
      torch::Tensor err = (wc - deq) / hinv1[i][i];
      if (i + 1 < count) {
        w1.narrow(1, i + 1, count - i - 1)
            .sub_(err.unsqueeze(1).mm(hinv1[i].narrow(0, i + 1, count - i - 1).unsqueeze(0)));
      }
      err1.select(1, i).copy_(err);
    }
    if (i1 + count < cols) {
      wk.narrow(1, i1 + count, cols - i1 - count)
          .sub_(err1.mm(hinv.narrow(0, i1, count).narrow(1, i1 + count, cols - i1 - count)));
    }
  }
  return RtnWeight::FromCodes(codes, scales.to(torch::kHalf), mins.to(torch::kHalf), o.bits,
                              o.group);
}

}  // namespace fedlora::compress
