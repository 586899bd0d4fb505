// The local trainer: next-token training of LoRA (or, for pretraining, all) parameters on
// batches of token windows. Seeded and repeatable.
#ifndef FEDLORA_DEVICE_TRAINER_H_
#define FEDLORA_DEVICE_TRAINER_H_

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/device/optimizer.h"
#include "fedlora/model/llama.h"
#include "fedlora/model/tokenizer.h"

namespace fedlora::device {

// Fixed-length token windows cut from a stream; `mask` marks real tokens (1) vs padding (0).
struct TokenWindows {
  torch::Tensor ids;   // [W, T] int64
  torch::Tensor mask;  // [W, T] int64
  int64_t size() const { return ids.defined() ? ids.size(0) : 0; }
};

// Concatenates [BOS] + ids + [EOS] of every text and cuts the stream into windows of `seq_len`
// tokens (the last one padded). Empty input gives zero windows.
TokenWindows MakeWindows(const model::Tokenizer& tokenizer, const std::vector<std::string>& texts,
                         int64_t seq_len);

struct TrainOptions {
  OptimizerOptions optimizer;
  int64_t batch_size = 8;  // windows per step (per group in batched training)
  int epochs = 1;
  int64_t max_steps = 0;  // > 0: stop after this many steps (cycling epochs as needed)
  // > 0: also stop after the first step that ends past this many seconds (a device's time
  // budget; at least one step runs). TrainStats::steps says how many ran.
  double max_seconds = 0;
  uint64_t seed = 0;      // window order
  bool progress = false;  // progress bar on a TTY
  // > 0: adds (prox_mu / 2) * ||params - params at the start||^2 to the loss, a proximal pull
  // towards the starting point (Ditto's personal objective when starting from the global
  // adapter; Li et al., ICML 2021). Reported losses exclude it.
  double prox_mu = 0;
  // Data-parallel shards of each step: the batch's windows are split into this many parts,
  // each run forward and backward in its own thread with single-threaded matrix products, and
  // the gradients are summed in shard order (the same loss and gradient as one pass, up to
  // float rounding). 0: one per BLAS thread, i.e. the `--threads` / fedlora_config.threads
  // budget, all cores by default (what a device wants). 1: one pass on the calling thread,
  // matrix products threaded by the BLAS (what callers that already run one trainer per core
  // want, such as the simulator's workers). Never more shards than windows per batch.
  int shards = 1;
};

struct TrainStats {
  int64_t steps = 0;
  int64_t tokens = 0;  // real (unpadded) tokens processed, all groups
  double first_loss = 0;
  double last_loss = 0;
  double mean_loss = 0;
  double seconds = 0;
  int shards = 1;              // data-parallel parts each step ran in (TrainOptions::shards)
  std::vector<double> losses;  // per step (mean over groups)
};

// Number of steps TrainOptions imply for `windows` windows.
int64_t PlannedSteps(int64_t windows, const TrainOptions& options);

// Trains `params` (tensors with requires_grad; everything else in `model` must be frozen)
// on `windows`. INVALID_ARGUMENT if there are no windows or no parameters; FAILED_PRECONDITION
// if the loss becomes NaN/inf (the parameters are then restored to their starting values).
absl::StatusOr<TrainStats> Train(const model::LlamaModel& model,
                                 const std::vector<torch::Tensor>& params,
                                 const TokenWindows& windows, const TrainOptions& options);

// Batched multi-device training: `groups` devices, each with its own windows, train together;
// every parameter has leading dimension G == per_group.size() (see adapters::StackedLora) and
// the model's batch is laid out group-major. The loss is the sum of per-group mean losses and
// clipping is per group, so each group's result equals training it alone (up to float
// rounding). All groups take the same number of steps: the plan of the first group.
absl::StatusOr<TrainStats> TrainGrouped(const model::LlamaModel& model,
                                        const std::vector<torch::Tensor>& params,
                                        const std::vector<TokenWindows>& per_group,
                                        const std::vector<uint64_t>& group_seeds,
                                        const TrainOptions& options);

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_TRAINER_H_
