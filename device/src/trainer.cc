#include "fedlora/device/trainer.h"

#include <torch/types.h>
#include <torch/utils.h>
#include <torch/autograd.h>
#include <torch/nn/functional/loss.h>

#include <chrono>
#include <cmath>
#include <exception>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fedlora/common/progress.h"
#include "fedlora/common/random.h"
#include "fedlora/model/fused_ops.h"
#include "fedlora/model/threads.h"

namespace fedlora::device {
namespace {

// A seeded, portable permutation (Fisher-Yates over SplitMix64, unbiased draws).
std::vector<int64_t> Permutation(int64_t n, SplitMix64& rng) {
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[rng.Uniform(static_cast<uint64_t>(i + 1))]);
  return p;
}

// Yields batch indices epoch by epoch, reshuffling each epoch.
class BatchSampler {
 public:
  BatchSampler(int64_t windows, int64_t batch, uint64_t seed)
      : n_(windows), batch_(batch), rng_(seed) {}
  std::vector<int64_t> Next() {
    std::vector<int64_t> out;
    while (static_cast<int64_t>(out.size()) < std::min(batch_, n_)) {
      if (pos_ >= order_.size()) {
        order_ = Permutation(n_, rng_);
        pos_ = 0;
      }
      out.push_back(order_[pos_++]);
    }
    return out;
  }

 private:
  int64_t n_, batch_;
  SplitMix64 rng_;
  std::vector<int64_t> order_;
  size_t pos_ = 0;
};

// Per predicted token: -log p(ids[:, i + 1] | ids[:, :i + 1]), [N * (T - 1)], 0 where the
// target is padding. A frozen LM head takes the fused path (no [N, T, vocab] logits, and the
// head's gradient formed with its softmax); a trainable one (pretraining) the plain one.
// `head_chunk`: rows of logits the fused path holds at a time.
torch::Tensor TokenNll(const model::LlamaModel& model, const torch::Tensor& ids,
                       const torch::Tensor& mask, const model::ForwardOptions& fo,
                       int64_t head_chunk) {
  const int64_t t = ids.size(1);
  torch::Tensor target = ids.narrow(1, 1, t - 1).masked_fill(
      mask.narrow(1, 1, t - 1).eq(0), -100).reshape({-1});
  // The last token is only a target: its hidden state predicts nothing, and under the causal
  // mask no earlier position sees it (positions come from the mask's prefix sums), so the model
  // runs on the first t - 1 tokens: the same hidden states, 1/t less work, and row counts that
  // are whole multiples of the window (a 129-token window fed 258-row products to a shard).
  model::ForwardOptions prefix = fo;
  if (prefix.attention_mask.defined()) {
    prefix.attention_mask = fo.attention_mask.narrow(1, 0, t - 1);
  }
  torch::Tensor hidden = t >= 2 ? model.Hidden(ids.narrow(1, 0, t - 1), prefix)
                                : model.Hidden(ids, fo).narrow(1, 0, 0);  // no targets at all
  if (model::FusedKernelsEnabled() && !model.HeadWeight().requires_grad() &&
      hidden.scalar_type() == torch::kFloat && model.HeadWeight().scalar_type() == torch::kFloat) {
    return model::FusedLinearCrossEntropy(hidden.reshape({-1, hidden.size(-1)}),
                                          model.HeadWeight(), target, head_chunk);
  }
  torch::Tensor logits = model.Logits(hidden);
  return torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(-1)}), target,
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone).ignore_index(
          -100));
}

// Rows of logits the fused LM head + cross-entropy holds at a time in one pass.
constexpr int64_t kHeadChunk = 256;

// One step's loss (the sum over groups of each group's mean NLL over its real targets) and its
// gradient, left in each parameter's grad. With `shards` > 1 the windows of every group are
// split into `shards` parts (group-major order kept, as StackedLora expects), each part runs
// forward and backward in its own thread, and the parts' gradients are added in shard order:
// each part's loss is its NLL sum over the group's whole denominator, so the parts add up to
// the loss of one pass.
double LossAndGradients(const model::LlamaModel& model, const std::vector<torch::Tensor>& params,
                        const torch::Tensor& ids, const torch::Tensor& mask, int64_t groups,
                        int shards) {
  const int64_t t = ids.size(1), per_group = ids.size(0) / groups;
  torch::Tensor valid_all = mask.narrow(1, 1, t - 1).to(torch::kFloat).view({groups, -1});
  torch::Tensor denom = valid_all.sum(1).clamp_min(1);  // [groups]
  std::vector<double> losses(shards, 0.0);
  std::vector<std::vector<torch::Tensor>> grads(shards);
  std::vector<std::exception_ptr> errors(shards);
  auto run = [&](int s) {
    try {
      const int64_t lo = per_group * s / shards, hi = per_group * (s + 1) / shards;
      torch::Tensor part_ids = ids, part_mask = mask;
      if (shards > 1) {
        std::vector<int64_t> rows;
        for (int64_t g = 0; g < groups; ++g) {
          for (int64_t r = lo; r < hi; ++r) rows.push_back(g * per_group + r);
        }
        torch::Tensor index = torch::tensor(rows, torch::kInt64);
        part_ids = ids.index_select(0, index);
        part_mask = mask.index_select(0, index);
      }
      model::ForwardOptions fo;
      fo.training = true;
      fo.attention_mask = part_mask;
      // Shards side by side hold together as many logits rows as one pass.
      torch::Tensor nll = TokenNll(model, part_ids, part_mask, fo,
                                   std::max<int64_t>(64, kHeadChunk / shards));
      torch::Tensor valid = part_mask.narrow(1, 1, t - 1).to(torch::kFloat).view({groups, -1});
      torch::Tensor loss = ((nll.view({groups, -1}) * valid).sum(1) / denom).sum();
      losses[s] = loss.item<double>();
      grads[s] = torch::autograd::grad({loss}, params, /*grad_outputs=*/{},
                                       /*retain_graph=*/false, /*create_graph=*/false,
                                       /*allow_unused=*/true);
    } catch (...) {
      errors[s] = std::current_exception();
    }
  };
  if (shards == 1) {
    run(0);
  } else {
    std::vector<std::thread> threads;
    for (int s = 1; s < shards; ++s) threads.emplace_back(run, s);
    run(0);
    for (auto& th : threads) th.join();
  }
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  torch::NoGradGuard ng;
  double total = 0;
  for (int s = 0; s < shards; ++s) {
    total += losses[s];
    for (size_t i = 0; i < params.size(); ++i) {
      const torch::Tensor& g = grads[s][i];
      if (!g.defined()) continue;
      if (!params[i].grad().defined()) {
        params[i].mutable_grad() = g;
      } else {
        params[i].mutable_grad().add_(g);
      }
    }
  }
  return total;
}

}  // namespace

TokenWindows MakeWindows(const model::Tokenizer& tokenizer, const std::vector<std::string>& texts,
                         int64_t seq_len) {
  std::vector<int64_t> stream;
  for (const auto& t : texts) {
    std::vector<int64_t> ids = tokenizer.EncodeWithBos(t);
    stream.insert(stream.end(), ids.begin(), ids.end());
    stream.push_back(tokenizer.eos_id());
  }
  TokenWindows w;
  if (stream.size() < 2) return w;
  int64_t n = (static_cast<int64_t>(stream.size()) + seq_len - 1) / seq_len;
  w.ids = torch::zeros({n, seq_len}, torch::kInt64);
  w.mask = torch::zeros({n, seq_len}, torch::kInt64);
  auto ids = w.ids.accessor<int64_t, 2>();
  auto mask = w.mask.accessor<int64_t, 2>();
  for (size_t i = 0; i < stream.size(); ++i) {
    ids[i / seq_len][i % seq_len] = stream[i];
    mask[i / seq_len][i % seq_len] = 1;
  }
  // A final window with a single real token predicts nothing: drop it.
  if (n > 1 && stream.size() % seq_len == 1) {
    w.ids = w.ids.narrow(0, 0, n - 1);
    w.mask = w.mask.narrow(0, 0, n - 1);
  }
  return w;
}

int64_t PlannedSteps(int64_t windows, const TrainOptions& o) {
  if (o.max_steps > 0) return o.max_steps;
  int64_t per_epoch = (windows + o.batch_size - 1) / std::max<int64_t>(o.batch_size, 1);
  return per_epoch * std::max(o.epochs, 1);
}

absl::StatusOr<TrainStats> Train(const model::LlamaModel& model,
                                 const std::vector<torch::Tensor>& params,
                                 const TokenWindows& windows, const TrainOptions& options) {
  return TrainGrouped(model, params, {windows}, {options.seed}, options);
}

absl::StatusOr<TrainStats> TrainGrouped(const model::LlamaModel& model,
                                        const std::vector<torch::Tensor>& params,
                                        const std::vector<TokenWindows>& per_group,
                                        const std::vector<uint64_t>& group_seeds,
                                        const TrainOptions& options) {
  if (params.empty()) return absl::InvalidArgumentError("no trainable parameters");
  if (per_group.empty() || per_group.size() != group_seeds.size()) {
    return absl::InvalidArgumentError("need one window set and one seed per group");
  }
  for (size_t g = 0; g < per_group.size(); ++g) {
    if (per_group[g].size() == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "group ", g, " has no training windows (hint: the text is empty or too short)"));
    }
  }
  const int64_t groups = static_cast<int64_t>(per_group.size());
  const bool grouped = groups > 1;
  TrainOptions o = options;
  const int64_t steps = PlannedSteps(per_group[0].size(), o);
  if (o.optimizer.total_steps <= 0) o.optimizer.total_steps = steps;
  std::vector<torch::Tensor> start;
  for (const auto& p : params) start.push_back(p.detach().clone());
  Optimizer opt(params, o.optimizer, grouped ? groups : 0);
  std::vector<BatchSampler> samplers;
  for (int64_t g = 0; g < groups; ++g) {
    samplers.emplace_back(per_group[g].size(), o.batch_size, group_seeds[g]);
  }
  // Data-parallel shards: by default one per BLAS thread (the caller's thread budget), never
  // more than the windows of a batch; matrix products go single-threaded while shards run
  // side by side.
  const int64_t per_batch = std::min(o.batch_size, per_group[0].size());
  const int shards = static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>(o.shards > 0 ? o.shards : model::BlasThreads(), per_batch)));
  std::optional<model::ScopedBlasThreads> single_blas;
  if (shards > 1) single_blas.emplace(1);
  TrainStats stats;
  stats.shards = shards;
  ProgressBar bar("train", steps, o.progress);
  auto t0 = std::chrono::steady_clock::now();
  int64_t done = 0;
  for (int64_t step = 0; step < steps; ++step) {
    std::vector<torch::Tensor> ids_parts, mask_parts;
    int64_t b = 0;
    for (int64_t g = 0; g < groups; ++g) {
      std::vector<int64_t> idx = samplers[g].Next();
      if (g == 0) b = static_cast<int64_t>(idx.size());
      if (static_cast<int64_t>(idx.size()) != b) {
        return absl::InvalidArgumentError(absl::StrCat(
            "group ", g, " has fewer windows than the batch size ", o.batch_size,
            " (hint: give every device at least batch_size windows, or lower the batch size)"));
      }
      torch::Tensor index = torch::tensor(idx, torch::kInt64);
      ids_parts.push_back(per_group[g].ids.index_select(0, index));
      mask_parts.push_back(per_group[g].mask.index_select(0, index));
    }
    torch::Tensor ids = torch::cat(ids_parts, 0);
    torch::Tensor mask = torch::cat(mask_parts, 0);
    opt.ZeroGrad();
    const double loss_sum = LossAndGradients(model, params, ids, mask, groups, shards);
    const double mean_loss = loss_sum / static_cast<double>(groups);
    if (!std::isfinite(mean_loss)) {
      torch::NoGradGuard ng;
      for (size_t i = 0; i < params.size(); ++i) params[i].detach().copy_(start[i]);
      return absl::FailedPreconditionError(absl::StrCat(
          "training diverged at step ", step, " (loss ", mean_loss,
          "); parameters restored (hint: lower the learning rate or enable clipping)"));
    }
    if (o.prox_mu > 0) {
      // d/dp of (mu / 2) ||p - start||^2.
      torch::NoGradGuard ng;
      for (size_t i = 0; i < params.size(); ++i) {
        torch::Tensor pull = (params[i].detach() - start[i]) * o.prox_mu;
        if (params[i].grad().defined()) {
          params[i].mutable_grad().add_(pull);
        } else {
          params[i].mutable_grad() = pull;
        }
      }
    }
    opt.Step();
    stats.tokens += mask.sum().item<int64_t>();
    stats.losses.push_back(mean_loss);
    bar.Update(step + 1, absl::StrFormat("loss %.3f", mean_loss));
    done = step + 1;
    if (o.max_seconds > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() >=
            o.max_seconds) {
      break;
    }
  }
  bar.Finish();
  stats.steps = done;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!stats.losses.empty()) {
    stats.first_loss = stats.losses.front();
    stats.last_loss = stats.losses.back();
    double s = 0;
    for (double l : stats.losses) s += l;
    stats.mean_loss = s / static_cast<double>(stats.losses.size());
  }
  return stats;
}

}  // namespace fedlora::device
