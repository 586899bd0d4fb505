#include "fedlora/compress/compress_model.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "fedlora/common/progress.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/compress/caldera.h"
#include "fedlora/compress/composite.h"
#include "fedlora/compress/gptq.h"
#include "fedlora/compress/int8.h"
#include "fedlora/compress/nf4.h"
#include "fedlora/compress/prune.h"
#include "fedlora/compress/rtn.h"

namespace fedlora::compress {
namespace {

using model::Proj;

absl::StatusOr<std::shared_ptr<PackedWeight>> Quantize(const torch::Tensor& w,
                                                       const torch::Tensor& h,
                                                       const torch::Tensor& mask,
                                                       const CompressOptions& o) {
  const std::string& m = o.method;
  if (m == "int8") return Int8Weight::Quantize(w);
  if (m == "rtn") return RtnWeight::Quantize(w, o.bits, o.group);
  if (m == "nf4") return Nf4Weight::Quantize(w);
  if (m == "gptq") return GptqQuantize(w, h, GptqOptions{o.bits, o.group, 128, 0.01}, mask);
  CalderaOptions co;
  co.rank = o.rank;
  co.q_bits = o.bits;
  co.q_group = o.group;
  co.lr_bits = o.lr_bits;
  co.iterations = o.iterations;
  co.hadamard = o.hadamard;
  return CalderaQuantize(w, h, co);
}

}  // namespace

nlohmann::json CompressReport::ToJson() const {
  nlohmann::json layers_json = nlohmann::json::array();
  for (const auto& l : layers) {
    layers_json.push_back({{"name", l.name},
                           {"scheme", l.scheme},
                           {"bits_per_weight", l.bits_per_weight},
                           {"relative_hessian_error", l.hessian_error}});
  }
  return {{"method", method},
          {"linear_params", linear_params},
          {"linear_bytes", linear_bytes},
          {"bits_per_weight", bits_per_weight},
          {"calibration_tokens", calibration_tokens},
          {"seconds", seconds},
          {"layers", layers_json}};
}

absl::StatusOr<CompressReport> CompressModel(model::LlamaModel& model, const CompressOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  const std::string& m = o.method;
  if (m != "int8" && m != "rtn" && m != "nf4" && m != "gptq" && m != "caldera") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--method '", m, "' is not a compression method; allowed: int8, rtn, nf4, gptq, caldera"));
  }
  if ((m == "rtn" || m == "gptq" || m == "caldera") && (o.bits < 2 || o.bits > 8)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--bits ", o.bits, " out of range for ", m, "; allowed 2..8"));
  }
  if (o.group < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--group ", o.group, " must be >= 1"));
  }
  if (m == "caldera" && o.lr_bits != 4 && o.lr_bits != 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("caldera factor bits ", o.lr_bits, " out of range; allowed 4 or 8"));
  }
  FEDLORA_ASSIGN_OR_RETURN(PruneMethod prune, ParsePruneMethod(o.prune));
  const bool calibrated = m == "gptq" || m == "caldera" || prune == PruneMethod::kWanda;
  if (calibrated && o.calib_ids.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        m == "gptq" || m == "caldera" ? "--method " + m : std::string("--prune wanda"),
        " needs calibration text (hint: give --calib FILE with a few thousand tokens of text "
        "like the model's use)"));
  }
  CompressReport report;
  report.method = m;
  Calibration cal;
  const bool have_calib = o.calib_ids.size() >= 2;
  if (have_calib) {
    FEDLORA_ASSIGN_OR_RETURN(cal, CollectHessians(model, o.calib_ids, o.calib));
    report.calibration_tokens = cal.tokens;
  }
  const int layers = static_cast<int>(model.layers.size());
  ProgressBar bar("compress " + m, int64_t{layers} * model::kNumProj, o.progress);
  torch::NoGradGuard no_grad;
  for (int l = 0; l < layers; ++l) {
    for (int p = 0; p < model::kNumProj; ++p) {
      model::Linear& lin = model.layers[l].proj[p];
      const std::string name = absl::StrCat("model.layers.", l, ".", model::ProjModule(Proj(p)),
                                            ".", model::ProjName(Proj(p)), ".weight");
      if (lin.frozen) {
        return absl::InvalidArgumentError(absl::StrCat(
            "compress: '", name, "' is already compressed (hint: start from the float model)"));
      }
      torch::Tensor w = lin.weight.detach().to(torch::kFloat);
      torch::Tensor h = have_calib ? cal.H(l, Proj(p)) : torch::Tensor();
      torch::Tensor mask;
      if (prune != PruneMethod::kNone) {
        torch::Tensor norms = have_calib ? cal.InputNorms(l, Proj(p)) : torch::Tensor();
        FEDLORA_ASSIGN_OR_RETURN(mask, PruneMask(w, prune, o.sparsity, norms));
        if (m != "gptq") w = w * mask;
      }
      auto q = Quantize(w, h, mask, o);
      if (!q.ok()) {
        return absl::Status(q.status().code(), absl::StrCat(name, ": ", q.status().message()));
      }
      std::shared_ptr<PackedWeight> packed = *q;
      if (mask.defined()) packed = std::make_shared<MaskedWeight>(packed, mask);
      LayerReport lr;
      lr.name = name;
      lr.scheme = packed->scheme();
      lr.bits_per_weight = packed->bits_per_weight();
      if (h.defined()) {
        const double base = HessianError(w, torch::zeros_like(w), h);
        lr.hessian_error = base > 0 ? HessianError(lin.weight, packed->Dense(), h) / base : 0.0;
      }
      report.linear_params += w.numel();
      report.linear_bytes += packed->bytes();
      report.layers.push_back(lr);
      lin.SetFrozen(packed);
      bar.Update(int64_t{l} * model::kNumProj + p + 1, name);
    }
  }
  bar.Finish();
  report.bits_per_weight = report.linear_params > 0
                               ? 8.0 * static_cast<double>(report.linear_bytes) /
                                     static_cast<double>(report.linear_params)
                               : 0.0;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace fedlora::compress
