#include "fedlora/compress/lora_init.h"

#include "absl/strings/str_cat.h"

namespace fedlora::compress {

absl::StatusOr<std::vector<LoraInitFactors>> ResidualLoraInit(
    const model::LlamaModel& float_model, const model::LlamaModel& compressed, int rank,
    double scaling, const std::vector<model::Proj>& targets) {
  if (float_model.layers.size() != compressed.layers.size()) {
    return absl::InvalidArgumentError(
        "lora init: the float and compressed models have different layer counts (hint: pass "
        "the float model the compressed one came from)");
  }
  torch::NoGradGuard no_grad;
  std::vector<LoraInitFactors> out;
  for (size_t l = 0; l < float_model.layers.size(); ++l) {
    for (model::Proj p : targets) {
      const model::Linear& a = float_model.layers[l].Get(p);
      const model::Linear& b = compressed.layers[l].Get(p);
      if (a.out_features() != b.out_features() || a.in_features() != b.in_features()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "lora init: layer ", l, " ", model::ProjName(p), " shapes differ between the models"));
      }
      if (rank < 1 || rank > std::min(a.out_features(), a.in_features())) {
        return absl::InvalidArgumentError(
            absl::StrCat("lora init: rank ", rank, " out of range; allowed 1..",
                         std::min(a.out_features(), a.in_features())));
      }
      torch::Tensor resid = (a.DenseWeight() - b.DenseWeight()).to(torch::kDouble);
      auto [u, s, vh] = at::linalg_svd(resid, /*full_matrices=*/false);
      torch::Tensor sr = s.narrow(0, 0, rank).sqrt();
      LoraInitFactors f;
      f.layer = static_cast<int>(l);
      f.proj = p;
      f.A = (sr.unsqueeze(1) * vh.narrow(0, 0, rank)).to(torch::kFloat);
      f.B = (u.narrow(1, 0, rank) * sr.unsqueeze(0) / scaling).to(torch::kFloat);
      out.push_back(std::move(f));
    }
  }
  return out;
}

}  // namespace fedlora::compress
