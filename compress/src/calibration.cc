#include "fedlora/compress/calibration.h"

#include "absl/strings/str_cat.h"

namespace fedlora::compress {

using model::Proj;

torch::Tensor Calibration::InputNorms(int layer, Proj p) const {
  return (H(layer, p).diagonal().clamp_min(0) * static_cast<double>(tokens))
      .sqrt()
      .to(torch::kFloat);
}

absl::StatusOr<Calibration> CollectHessians(model::LlamaModel& model,
                                            const std::vector<int64_t>& ids,
                                            const CalibrationOptions& options) {
  const int64_t total = std::min<int64_t>(ids.size(), options.max_tokens);
  if (total < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "calibration: ", total, " tokens; need at least 2 (hint: give a longer --calib text)"));
  }
  const int64_t window =
      std::max<int64_t>(2, std::min(options.window, model.config().max_position_embeddings));
  Calibration cal;
  const int layers = static_cast<int>(model.layers.size());
  cal.hessians.resize(layers);
  // Observed inputs: q (shared by k, v), o, gate (shared by up), down.
  const Proj observed[4] = {Proj::kQ, Proj::kO, Proj::kGate, Proj::kDown};
  for (int l = 0; l < layers; ++l) {
    for (Proj p : observed) {
      model::Linear& lin = model.layers[l].Get(p);
      const int64_t in = lin.in_features();
      torch::Tensor h = torch::zeros({in, in}, torch::kDouble);
      cal.hessians[l][static_cast<int>(p)] = h;
      lin.input_observer = [h](const torch::Tensor& x) mutable {
        torch::Tensor x2 = x.detach().reshape({-1, x.size(-1)}).to(torch::kDouble);
        h.addmm_(x2.t(), x2);
      };
    }
    auto& hs = cal.hessians[l];
    hs[static_cast<int>(Proj::kK)] = hs[static_cast<int>(Proj::kQ)];
    hs[static_cast<int>(Proj::kV)] = hs[static_cast<int>(Proj::kQ)];
    hs[static_cast<int>(Proj::kUp)] = hs[static_cast<int>(Proj::kGate)];
  }
  {
    torch::NoGradGuard no_grad;
    for (int64_t start = 0; start < total; start += window) {
      const int64_t n = std::min(window, total - start);
      torch::Tensor input =
          torch::tensor(std::vector<int64_t>(ids.begin() + start, ids.begin() + start + n),
                        torch::kInt64)
              .unsqueeze(0);
      model.Hidden(input);
      cal.tokens += n;
    }
  }
  for (int l = 0; l < layers; ++l) {
    for (Proj p : observed) model.layers[l].Get(p).input_observer = nullptr;
    for (Proj p : observed)
      cal.hessians[l][static_cast<int>(p)].div_(static_cast<double>(cal.tokens));
  }
  return cal;
}

}  // namespace fedlora::compress
