#include "fedlora/compress/prune.h"

#include "absl/strings/str_cat.h"

namespace fedlora::compress {

absl::StatusOr<PruneMethod> ParsePruneMethod(const std::string& name) {
  if (name.empty() || name == "none") return PruneMethod::kNone;
  if (name == "magnitude") return PruneMethod::kMagnitude;
  if (name == "wanda") return PruneMethod::kWanda;
  if (name == "2:4") return PruneMethod::kTwoFour;
  return absl::InvalidArgumentError(absl::StrCat("--prune '", name,
                                                 "' is not a pruning method; allowed: "
                                                 "magnitude, wanda, 2:4"));
}

absl::StatusOr<torch::Tensor> PruneMask(const torch::Tensor& w, PruneMethod method, double sparsity,
                                        const torch::Tensor& input_norm) {
  torch::NoGradGuard no_grad;
  const int64_t out = w.size(0), in = w.size(1);
  if (method != PruneMethod::kTwoFour && !(sparsity >= 0 && sparsity < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("prune: sparsity ", sparsity, " out of range; allowed [0, 1)"));
  }
  if (input_norm.defined() && (input_norm.dim() != 1 || input_norm.size(0) != in)) {
    return absl::InvalidArgumentError("prune: input norms must be [in]");
  }
  if (method == PruneMethod::kWanda && !input_norm.defined()) {
    return absl::InvalidArgumentError(
        "prune: wanda needs calibration activations (hint: give --calib FILE)");
  }
  torch::Tensor score = w.detach().to(torch::kFloat).abs();
  if (input_norm.defined() && method != PruneMethod::kMagnitude) {
    score = score * input_norm.to(torch::kFloat).unsqueeze(0);
  }
  torch::Tensor keep = torch::ones({out, in}, torch::kBool);
  switch (method) {
    case PruneMethod::kNone:
      break;
    case PruneMethod::kMagnitude: {
      const int64_t k = static_cast<int64_t>(sparsity * static_cast<double>(out * in));
      if (k > 0) {
        torch::Tensor idx = std::get<1>(score.reshape({-1}).topk(k, 0, /*largest=*/false));
        keep.view({-1}).index_fill_(0, idx, false);
      }
      break;
    }
    case PruneMethod::kWanda: {
      const int64_t k = static_cast<int64_t>(sparsity * static_cast<double>(in));
      if (k > 0) {
        torch::Tensor idx = std::get<1>(score.topk(k, 1, /*largest=*/false));
        keep.scatter_(1, idx, false);
      }
      break;
    }
    case PruneMethod::kTwoFour: {
      const int64_t full = (in / 4) * 4;
      if (full > 0) {
        torch::Tensor s = score.narrow(1, 0, full).reshape({out, full / 4, 4});
        torch::Tensor idx = std::get<1>(s.topk(2, 2, /*largest=*/false));
        torch::Tensor k4 = torch::ones({out, full / 4, 4}, torch::kBool).scatter_(2, idx, false);
        keep.narrow(1, 0, full).copy_(k4.reshape({out, full}));
      }
      break;
    }
  }
  return keep;
}

}  // namespace fedlora::compress
