#include "fedlora/compress/caldera.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/compress/gptq.h"

namespace fedlora::compress {

absl::StatusOr<std::shared_ptr<LowRankWeight>> CalderaQuantize(const torch::Tensor& w,
                                                               const torch::Tensor& h,
                                                               const CalderaOptions& o,
                                                               double* error) {
  const int64_t out = w.size(0), in = w.size(1);
  if (o.rank < 1 || o.rank > std::min(out, in) || o.iterations < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("caldera: rank ", o.rank, " out of range for a [", out, ", ", in,
                     "] weight; allowed 1..", std::min(out, in), " (hint: lower --rank)"));
  }
  torch::NoGradGuard no_grad;
  torch::Tensor wd = w.detach().to(torch::kDouble);
  torch::Tensor hd = h.to(torch::kDouble);
  std::shared_ptr<const RandomHadamard> rot;
  if (o.hadamard) {
    rot = std::make_shared<RandomHadamard>(in, o.hadamard_seed);
    wd = rot->Apply(wd);                               // rows: W T^T
    hd = rot->Apply(rot->Apply(hd).t().contiguous());  // T H T^T (H symmetric)
  }
  // H^{1/2} and H^{-1/2} of the damped Hessian.
  torch::Tensor diag = hd.diagonal();
  const double mean = diag.mean().item<double>() > 0 ? diag.mean().item<double>() : 1.0;
  torch::Tensor hdamp = hd + torch::eye(in, torch::kDouble) * (o.damp * mean);
  auto [evals, evecs] = at::linalg_eigh(hdamp);
  evals = evals.clamp_min(1e-12 * mean);
  torch::Tensor hs = evecs.mm(torch::diag(evals.sqrt())).mm(evecs.t());
  torch::Tensor hs_inv = evecs.mm(torch::diag(evals.rsqrt())).mm(evecs.t());

  GptqOptions qo{o.q_bits, o.q_group, 128, o.damp};
  const int k = o.rank;
  GptqOptions ro{o.lr_bits, std::min<int>(o.lr_group, static_cast<int>(in)), 128, o.damp};
  GptqOptions lo{o.lr_bits, std::min<int>(o.lr_group, k), 128, o.damp};
  torch::Tensor lr = torch::zeros({out, in}, torch::kDouble);
  std::shared_ptr<LowRankWeight> best;
  double best_err = std::numeric_limits<double>::infinity();
  for (int it = 0; it < o.iterations; ++it) {
    FEDLORA_ASSIGN_OR_RETURN(auto q, GptqQuantize((wd - lr).to(torch::kFloat), hd, qo));
    torch::Tensor resid = wd - q->Dense().to(torch::kDouble);
    auto [u, s, vh] = at::linalg_svd(resid.mm(hs), /*full_matrices=*/false);
    torch::Tensor sk = s.narrow(0, 0, k).sqrt();
    torch::Tensor l = u.narrow(1, 0, k) * sk.unsqueeze(0);
    torch::Tensor r = (sk.unsqueeze(1) * vh.narrow(0, 0, k)).mm(hs_inv);
    FEDLORA_ASSIGN_OR_RETURN(auto rq, GptqQuantize(r.to(torch::kFloat), hd, ro));
    torch::Tensor rd = rq->Dense().to(torch::kDouble);
    // L = resid H R^T (R H R^T)^-1, then LDLQ against R H R^T (L's inputs are R x).
    torch::Tensor hr = rd.mm(hdamp).mm(rd.t());
    torch::Tensor hr_d =
        hr + torch::eye(k, torch::kDouble) * (1e-6 * hr.diagonal().mean().item<double>() + 1e-12);
    torch::Tensor lfit = at::linalg_solve(hr_d, rd.mm(hdamp).mm(resid.t())).t();
    FEDLORA_ASSIGN_OR_RETURN(auto lq, GptqQuantize(lfit.to(torch::kFloat), hr, lo));
    lr = lq->Dense().to(torch::kDouble).mm(rd);
    const double err = HessianError(wd, q->Dense().to(torch::kDouble) + lr, hd);
    if (err < best_err) {
      best_err = err;
      best = std::make_shared<LowRankWeight>(q, lq, rq, rot);
    }
  }
  if (error != nullptr) *error = best_err;
  return best;
}

}  // namespace fedlora::compress
