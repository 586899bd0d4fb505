// Pruning masks: unstructured magnitude, Wanda (|w| * ||x||) and 2:4 structured.
#ifndef FEDLORA_COMPRESS_PRUNE_H_
#define FEDLORA_COMPRESS_PRUNE_H_

#include <torch/types.h>

#include <string>

#include "absl/status/statusor.h"

namespace fedlora::compress {

enum class PruneMethod { kNone, kMagnitude, kWanda, kTwoFour };

// "magnitude", "wanda", "2:4" (or "" / "none"). INVALID_ARGUMENT otherwise, listing them.
absl::StatusOr<PruneMethod> ParsePruneMethod(const std::string& name);

// A bool mask [out, in] (true = kept) for float `w` [out, in]:
//  kMagnitude: the floor(sparsity * out * in) entries of smallest |w| in the whole matrix pruned;
//  kWanda: per output row, the floor(sparsity * in) entries of smallest |w| * input_norm pruned;
//  kTwoFour: in each group of 4 consecutive input columns the 2 of smallest score pruned
//   (score |w| * input_norm when input_norm is defined, else |w|; a tail of < 4 columns is kept).
// input_norm: float [in], required by kWanda. INVALID_ARGUMENT for sparsity outside [0, 1) or
// a missing / mis-shaped input_norm (hint: give --calib).
absl::StatusOr<torch::Tensor> PruneMask(const torch::Tensor& w, PruneMethod method, double sparsity,
                                        const torch::Tensor& input_norm = {});

}  // namespace fedlora::compress

#endif  // FEDLORA_COMPRESS_PRUNE_H_
