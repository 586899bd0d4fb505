// LoRA initialisation from what compression lost (LoftQ-style): per projection, the top
// singular directions of W - W', where W is the float weight and W' its compressed form
// (for CALDERA, Q + L R; so the adapter starts where CALDERA's own factors stop).
#ifndef FEDLORA_COMPRESS_LORA_INIT_H_
#define FEDLORA_COMPRESS_LORA_INIT_H_

#include <torch/types.h>

#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/model/llama.h"

namespace fedlora::compress {

struct LoraInitFactors {
  int layer = 0;
  model::Proj proj = model::Proj::kQ;
  torch::Tensor A;  // float32 [rank, in]
  torch::Tensor B;  // float32 [out, rank]
};

// For every layer and each projection in `targets`: with U S V^T the SVD of
// W_float - W_compressed, A = sqrt(S_r) V_r^T and B = U_r sqrt(S_r) / scaling, so that
// scaling * B A is the best rank-r approximation of the residual. INVALID_ARGUMENT when the
// two models' layer counts or projection shapes differ, or rank is outside 1..min(out, in).
absl::StatusOr<std::vector<LoraInitFactors>> ResidualLoraInit(
    const model::LlamaModel& float_model, const model::LlamaModel& compressed, int rank,
    double scaling, const std::vector<model::Proj>& targets);

}  // namespace fedlora::compress

#endif  // FEDLORA_COMPRESS_LORA_INIT_H_
