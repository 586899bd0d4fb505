// Server-side optimizers over the flat global adapter (Reddi et al. 2021, "Adaptive Federated
// Optimization"): FedAvg, FedAdam and FedYogi. The aggregated client delta acts as a
// pseudo-gradient (pointing downhill).
#ifndef FEDLORA_COORDINATOR_SERVER_OPTIMIZER_H_
#define FEDLORA_COORDINATOR_SERVER_OPTIMIZER_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fedlora::coordinator {

enum class ServerOptimizerKind { kFedAvg, kFedAdam, kFedYogi };

// "fedavg", "fedadam", "fedyogi".
const char* ServerOptimizerName(ServerOptimizerKind kind);
std::optional<ServerOptimizerKind> ParseServerOptimizer(std::string_view name);

class ServerOptimizer {
 public:
  ServerOptimizer(ServerOptimizerKind kind, double lr, double beta1, double beta2, double eps,
                  size_t dim);

  // global <- update(global, mean_delta). INVALID_ARGUMENT (global unchanged) for a size
  // mismatch or a non-finite entry in the delta.
  absl::Status Apply(const std::vector<float>& mean_delta, std::vector<float>* global);
  ServerOptimizerKind kind() const { return kind_; }
  // FedAdam/FedYogi keep per-coordinate moments m and v across rounds; FedAvg keeps nothing.
  bool has_moments() const { return kind_ != ServerOptimizerKind::kFedAvg; }

  // The moments as bytes: m then v, float64 little-endian (16 * dim bytes); "" for FedAvg.
  std::string EncodeMoments() const;
  // Replaces the moments with EncodeMoments' output. DATA_LOSS (moments unchanged) for bytes of
  // the wrong size or a non-finite or negative second moment; FAILED_PRECONDITION for FedAvg.
  absl::Status RestoreMoments(std::string_view bytes);

 private:
  ServerOptimizerKind kind_;
  double lr_, beta1_, beta2_, eps_;
  std::vector<double> m_, v_;
};

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_SERVER_OPTIMIZER_H_
