#include "fedlora/coordinator/server_optimizer.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace fedlora::coordinator {

ServerOptimizer::ServerOptimizer(ServerOptimizerKind kind, double lr, double beta1, double beta2,
                                 double eps, size_t dim)
    : kind_(kind), lr_(lr), beta1_(beta1), beta2_(beta2), eps_(eps) {
  if (kind_ != ServerOptimizerKind::kFedAvg) {
    m_.assign(dim, 0.0);
    // Reddi et al. initialise v to tau^2 so the first steps are not huge.
    v_.assign(dim, eps * eps);
  }
}

absl::Status ServerOptimizer::Apply(const std::vector<float>& delta, std::vector<float>* global) {
  if (delta.size() != global->size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "server update has ", delta.size(), " entries, the global adapter ", global->size()));
  }
  for (size_t i = 0; i < delta.size(); ++i) {
    if (!std::isfinite(delta[i])) {
      return absl::InvalidArgumentError(absl::StrCat("server update entry ", i, " is ", delta[i],
                                                     " (hint: a bad aggregate is discarded)"));
    }
  }
  std::vector<float>& x = *global;
  switch (kind_) {
    case ServerOptimizerKind::kFedAvg:
      for (size_t i = 0; i < x.size(); ++i) x[i] += static_cast<float>(lr_ * delta[i]);
      break;
    case ServerOptimizerKind::kFedAdam:
    case ServerOptimizerKind::kFedYogi:
      for (size_t i = 0; i < x.size(); ++i) {
        const double d = delta[i], d2 = d * d;
        m_[i] = beta1_ * m_[i] + (1 - beta1_) * d;
        if (kind_ == ServerOptimizerKind::kFedAdam) {
          v_[i] = beta2_ * v_[i] + (1 - beta2_) * d2;
        } else {
          const double sign = (v_[i] - d2) > 0 ? 1.0 : ((v_[i] - d2) < 0 ? -1.0 : 0.0);
          v_[i] = v_[i] - (1 - beta2_) * d2 * sign;
        }
        x[i] += static_cast<float>(lr_ * m_[i] / (std::sqrt(v_[i]) + eps_));
      }
      break;
  }
  return absl::OkStatus();
}

}  // namespace fedlora::coordinator
