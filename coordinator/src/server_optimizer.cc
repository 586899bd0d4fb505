#include "fedlora/coordinator/server_optimizer.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace fedlora::coordinator {

const char* ServerOptimizerName(ServerOptimizerKind kind) {
  switch (kind) {
    case ServerOptimizerKind::kFedAdam:
      return "fedadam";
    case ServerOptimizerKind::kFedYogi:
      return "fedyogi";
    case ServerOptimizerKind::kFedAvg:
      break;
  }
  return "fedavg";
}

std::optional<ServerOptimizerKind> ParseServerOptimizer(std::string_view name) {
  for (auto k : {ServerOptimizerKind::kFedAvg, ServerOptimizerKind::kFedAdam,
                 ServerOptimizerKind::kFedYogi}) {
    if (name == ServerOptimizerName(k)) return k;
  }
  return std::nullopt;
}

std::string ServerOptimizer::EncodeMoments() const {
  if (!has_moments()) return "";
  // x86/ARM are little-endian; the format says float64 LE.
  std::string out(16 * m_.size(), '\0');
  std::memcpy(out.data(), m_.data(), 8 * m_.size());
  std::memcpy(out.data() + 8 * m_.size(), v_.data(), 8 * v_.size());
  return out;
}

absl::Status ServerOptimizer::RestoreMoments(std::string_view bytes) {
  if (!has_moments()) {
    return absl::FailedPreconditionError("server optimizer: FedAvg keeps no moments to restore");
  }
  const size_t dim = m_.size();
  if (bytes.size() != 16 * dim) {
    return absl::DataLossError(absl::StrCat("server optimizer moments: ", bytes.size(),
                                            " bytes, expected ", 16 * dim, " (m and v of ", dim,
                                            " values)"));
  }
  std::vector<double> m(dim), v(dim);
  std::memcpy(m.data(), bytes.data(), 8 * dim);
  std::memcpy(v.data(), bytes.data() + 8 * dim, 8 * dim);
  for (size_t i = 0; i < dim; ++i) {
    if (!std::isfinite(m[i]) || !std::isfinite(v[i]) || v[i] < 0) {
      return absl::DataLossError(
          absl::StrCat("server optimizer moments: entry ", i, " is not a valid moment"));
    }
  }
  m_ = std::move(m);
  v_ = std::move(v);
  return absl::OkStatus();
}

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
