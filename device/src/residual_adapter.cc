#include "fedlora/device/residual_adapter.h"

#include "absl/strings/str_cat.h"
#include "fedlora/compress/lora_init.h"
#include "fedlora/device/runtime.h"

namespace fedlora::device {

absl::StatusOr<adapters::LoraAdapter> ResidualAdapter(const std::string& float_dir,
                                                      const model::LlamaModel& compressed,
                                                      const adapters::LoraConfig& config) {
  auto adapter = adapters::LoraAdapter::Create(compressed.config(), config, /*seed=*/1);
  if (!adapter.ok()) return adapter.status();
  auto float_rt = LoadRuntime(float_dir);
  if (!float_rt.ok()) return float_rt.status();
  auto factors = compress::ResidualLoraInit(*float_rt->model, compressed, config.rank,
                                            config.Scaling(), config.targets);
  if (!factors.ok()) return factors.status();
  torch::NoGradGuard no_grad;
  int filled = 0;
  for (const auto& slot : adapter->slots()) {
    for (const auto& f : *factors) {
      if (f.layer != slot.layer || f.proj != slot.proj) continue;
      if (!f.A.sizes().equals(slot.A.sizes()) || !f.B.sizes().equals(slot.B.sizes())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "residual LoRA init: layer ", slot.layer, " ", model::ProjName(slot.proj),
            " factors do not fit the adapter's shapes"));
      }
      slot.A.copy_(f.A);
      slot.B.copy_(f.B);
      ++filled;
    }
  }
  if (filled != static_cast<int>(adapter->slots().size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "residual LoRA init: ", filled, " of ", adapter->slots().size(),
        " adapter projections got factors (hint: --lora-layers must name existing layers)"));
  }
  return adapter;
}

}  // namespace fedlora::device
