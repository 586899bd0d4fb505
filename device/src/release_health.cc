#include "fedlora/device/release_health.h"

#include <optional>

#include "fedlora/adapters/lora_adapter.h"

namespace fedlora::device {
namespace {

absl::StatusOr<TextMetrics> Score(Runtime& rt, const std::string& dir,
                                  const std::vector<std::string>& texts) {
  std::optional<adapters::LoraAdapter> adapter;
  if (!dir.empty()) {
    auto a = adapters::LoraAdapter::LoadPeft(dir + "/adapter");
    if (!a.ok()) return a.status();
    adapter.emplace(std::move(*a));
    if (auto s = adapter->Attach(*rt.model); !s.ok()) return s;
  }
  TextMetrics m = EvaluateTexts(*rt.model, *rt.tokenizer, texts);
  if (adapter) adapter->Detach(*rt.model);
  return m;
}

}  // namespace

absl::StatusOr<HealthReport> CheckReleaseHealth(Runtime& rt, const std::string& old_release_dir,
                                                const std::string& new_release_dir,
                                                const std::vector<std::string>& texts,
                                                const HealthGateOptions& options) {
  HealthReport r;
  auto before = Score(rt, old_release_dir, texts);
  if (!before.ok()) return before.status();
  auto after = Score(rt, new_release_dir, texts);
  if (!after.ok()) return after.status();
  r.before = *before;
  r.after = *after;
  // The keyboard metric is the gate; the loss catches what a short held-back text's top-3 is
  // too coarse to show.
  r.healthy = r.after.next_word_top3() >= r.before.next_word_top3() - options.top3_margin &&
              r.after.mean_nll() <= r.before.mean_nll() + options.nll_margin;
  return r;
}

}  // namespace fedlora::device
