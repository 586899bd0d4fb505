// Compressing every projection of a model in place with one method, with optional pruning.
#ifndef FEDLORA_COMPRESS_COMPRESS_MODEL_H_
#define FEDLORA_COMPRESS_COMPRESS_MODEL_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/compress/calibration.h"
#include "fedlora/model/llama.h"
#include "nlohmann/json.hpp"

namespace fedlora::compress {

struct CompressOptions {
  std::string method = "rtn";  // int8, rtn, nf4, gptq, caldera
  int bits = 4;                // rtn / gptq; CALDERA's Q bits
  int group = 64;              // rtn / gptq / CALDERA Q group
  int rank = 16;               // caldera
  int lr_bits = 4;             // caldera factors
  int iterations = 3;          // caldera
  bool hadamard = false;       // caldera: randomized Hadamard incoherence processing
  std::string prune;           // "", magnitude, wanda, 2:4
  double sparsity = 0.5;
  std::vector<int64_t> calib_ids;  // token ids of the calibration text (gptq, caldera, wanda)
  CalibrationOptions calib;
  bool progress = true;  // a per-layer bar on a TTY
};

struct LayerReport {
  std::string name;
  std::string scheme;
  double bits_per_weight = 0;
  double hessian_error = -1;  // tr(E H E^T) / tr(W H W^T) when calibrated, else -1
};

struct CompressReport {
  std::string method;
  int64_t linear_params = 0;   // weights of the compressed projections
  int64_t linear_bytes = 0;    // their packed bytes (everything counted)
  double bits_per_weight = 0;  // 8 * linear_bytes / linear_params
  int64_t calibration_tokens = 0;
  double seconds = 0;
  std::vector<LayerReport> layers;
  nlohmann::json ToJson() const;
};

// Replaces every projection of `model` (float) by its packed form (Linear::SetFrozen).
// INVALID_ARGUMENT for an unknown method, bits outside 2..8 (int8: ignored; nf4: ignored),
// group < 1, a calibrated method (gptq, caldera, wanda) without calibration ids (hint:
// --calib), or an already compressed projection.
absl::StatusOr<CompressReport> CompressModel(model::LlamaModel& model,
                                             const CompressOptions& options);

}  // namespace fedlora::compress

#endif  // FEDLORA_COMPRESS_COMPRESS_MODEL_H_
