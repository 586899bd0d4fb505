// Server-side optimizers over the flat global adapter (Reddi et al. 2021, "Adaptive Federated
// Optimization"): FedAvg, FedAdam and FedYogi. The aggregated client delta acts as a
// pseudo-gradient (pointing downhill).
#ifndef FEDLORA_COORDINATOR_SERVER_OPTIMIZER_H_
#define FEDLORA_COORDINATOR_SERVER_OPTIMIZER_H_

#include <vector>

#include "absl/status/status.h"

namespace fedlora::coordinator {

enum class ServerOptimizerKind { kFedAvg, kFedAdam, kFedYogi };

class ServerOptimizer {
 public:
  ServerOptimizer(ServerOptimizerKind kind, double lr, double beta1, double beta2, double eps,
                  size_t dim);

  // global <- update(global, mean_delta). INVALID_ARGUMENT (global unchanged) for a size
  // mismatch or a non-finite entry in the delta.
  absl::Status Apply(const std::vector<float>& mean_delta, std::vector<float>* global);
  ServerOptimizerKind kind() const { return kind_; }

 private:
  ServerOptimizerKind kind_;
  double lr_, beta1_, beta2_, eps_;
  std::vector<double> m_, v_;
};

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_SERVER_OPTIMIZER_H_
