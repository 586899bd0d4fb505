#include "fedlora/device/personal_adapter.h"

#include <torch/types.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"

namespace fedlora::device {
namespace {

// Detaches every adapter attached to `model` and puts them back when it goes out of scope.
class StashAdapters {
 public:
  explicit StashAdapters(model::LlamaModel& model) : model_(model) {
    for (auto& layer : model_.layers) {
      for (auto& lin : layer.proj) {
        saved_.push_back(std::move(lin.loras));
        lin.loras.clear();
      }
    }
  }
  ~StashAdapters() {
    size_t i = 0;
    for (auto& layer : model_.layers) {
      for (auto& lin : layer.proj) {
        // Whatever was attached meanwhile goes first (it is detached by its owner).
        auto& back = saved_[i++];
        lin.loras.insert(lin.loras.begin(), back.begin(), back.end());
      }
    }
  }
  StashAdapters(const StashAdapters&) = delete;
  StashAdapters& operator=(const StashAdapters&) = delete;

 private:
  model::LlamaModel& model_;
  std::vector<std::vector<std::shared_ptr<model::LoraWeights>>> saved_;
};

bool AnyAttached(const model::LlamaModel& model) {
  for (const auto& layer : model.layers) {
    for (const auto& lin : layer.proj) {
      if (!lin.loras.empty()) return true;
    }
  }
  return false;
}

}  // namespace

std::string PersonalAdapterDir(const std::string& state_dir) { return state_dir + "/personal"; }

PersonalOptions::PersonalOptions() {
  lora.rank = 4;
  lora.alpha = 8;
  train.optimizer.lr = 5e-3;
  train.max_steps = 20;
  train.batch_size = 4;
  train.shards = 0;  // a device trains alone: one shard per core
}

absl::StatusOr<PersonalResult> TrainPersonalAdapter(model::LlamaModel& model,
                                                    const model::Tokenizer& tokenizer,
                                                    adapters::LoraAdapter& global,
                                                    const std::vector<std::string>& texts,
                                                    const PersonalOptions& options,
                                                    RandomSource& rng) {
  if (AnyAttached(model)) {
    return absl::FailedPreconditionError(
        "TrainPersonalAdapter: the model already has an adapter attached (hint: detach it; the "
        "global adapter is passed separately)");
  }
  TokenWindows windows = MakeWindows(tokenizer, texts, options.seq_len);
  if (windows.size() == 0) {
    return absl::InvalidArgumentError(
        "no training windows in the user's text (hint: the text is empty or too short)");
  }
  FEDLORA_ASSIGN_OR_RETURN(adapters::LoraAdapter personal,
                           adapters::LoraAdapter::Create(model.config(), options.lora,
                                                         rng.NextU64()));
  FEDLORA_RETURN_IF_ERROR(global.Attach(model));
  absl::Status st = personal.Attach(model);
  if (!st.ok()) {
    global.Detach(model);
    return st;
  }
  personal.SetTrainable(true);
  TrainOptions o = options.train;
  o.seed = rng.NextU64();
  auto stats = Train(model, personal.Parameters(), windows, o);
  personal.SetTrainable(false);
  personal.Detach(model);
  global.Detach(model);
  if (!stats.ok()) return stats.status();
  return PersonalResult{std::move(personal), *stats};
}

absl::StatusOr<GlobalDelta> TrainGlobalDelta(
    model::LlamaModel& model, const model::Tokenizer& tokenizer, const adapters::LoraConfig& lora,
    const std::vector<float>& start, const std::vector<std::string>& texts,
    const TrainOptions& options, int64_t seq_len, bool freeze_a) {
  StashAdapters stash(model);
  FEDLORA_ASSIGN_OR_RETURN(adapters::LoraAdapter adapter,
                           adapters::LoraAdapter::Create(model.config(), lora, 0));
  FEDLORA_RETURN_IF_ERROR(adapter.Unflatten(start.data(), start.size()));
  FEDLORA_RETURN_IF_ERROR(adapter.Attach(model));
  adapter.SetTrainable(true);
  GlobalDelta out;
  TokenWindows windows = MakeWindows(tokenizer, texts, seq_len);
  out.windows = windows.size();
  std::vector<torch::Tensor> params = adapter.Parameters();  // A, B per slot
  if (freeze_a) {
    std::vector<torch::Tensor> b;
    for (size_t i = 1; i < params.size(); i += 2) b.push_back(params[i]);
    params = std::move(b);
  }
  auto stats = Train(model, params, windows, options);
  std::vector<float> after = adapter.Flatten();
  adapter.Detach(model);
  if (!stats.ok()) return stats.status();
  out.stats = *stats;
  out.delta.resize(after.size());
  for (size_t i = 0; i < after.size(); ++i) out.delta[i] = after[i] - start[i];
  return out;
}

}  // namespace fedlora::device
