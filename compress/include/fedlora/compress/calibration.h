// Calibration statistics: H = X^T X / tokens of every linear layer's inputs, collected by
// running the model forward over windows of a calibration text.
#ifndef FEDLORA_COMPRESS_CALIBRATION_H_
#define FEDLORA_COMPRESS_CALIBRATION_H_

#include <torch/types.h>

#include <array>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/model/llama.h"

namespace fedlora::compress {

struct CalibrationOptions {
  int64_t max_tokens = 8192;  // tokens of the text used (from its start)
  int64_t window = 256;       // tokens per forward pass (capped by max_position_embeddings)
};

struct Calibration {
  // float64 [in, in] per layer and projection; q/k/v share one tensor, gate/up another.
  std::vector<std::array<torch::Tensor, model::kNumProj>> hessians;
  int64_t tokens = 0;
  const torch::Tensor& H(int layer, model::Proj p) const {
    return hessians[layer][static_cast<int>(p)];
  }
  // sqrt(diag H) * sqrt(tokens): the L2 norm of each input feature over the calibration
  // tokens (Wanda's ||x_j||), float32 [in].
  torch::Tensor InputNorms(int layer, model::Proj p) const;
};

// Runs `model` (float or already compressed) over `ids` (token ids, e.g. [BOS] + text) in
// windows, accumulating H for every projection. INVALID_ARGUMENT when fewer than 2 tokens are
// given (hint: a longer --calib text).
absl::StatusOr<Calibration> CollectHessians(model::LlamaModel& model,
                                            const std::vector<int64_t>& ids,
                                            const CalibrationOptions& options = {});

}  // namespace fedlora::compress

#endif  // FEDLORA_COMPRESS_CALIBRATION_H_
