#include "fedlora/secagg/graph.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "fedlora/secagg/rng.h"

namespace fedlora::secagg {

absl::StatusOr<NeighbourGraph> NeighbourGraph::Create(const proto::SecAggSessionConfig& config) {
  NeighbourGraph g;
  g.n_ = config.num_devices();
  g.k_ = config.degree();
  if (g.n_ < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("secagg: ", g.n_, " devices; secure aggregation needs at least 2"));
  }
  switch (config.graph()) {
    case proto::SECAGG_GRAPH_COMPLETE:
      if (g.k_ != g.n_ - 1) {
        return absl::InvalidArgumentError(absl::StrCat("secagg: complete graph on ", g.n_,
                                                       " devices has degree ", g.n_ - 1,
                                                       ", config says ", g.k_));
      }
      g.complete_ = true;
      return g;
    case proto::SECAGG_GRAPH_KREGULAR:
      break;
    default:
      return absl::InvalidArgumentError("secagg: graph kind unspecified (complete|kregular)");
  }
  if (g.k_ == 0 || g.k_ % 2 != 0 || g.k_ >= g.n_) {
    return absl::InvalidArgumentError(absl::StrCat("secagg: k-regular degree ", g.k_,
                                                   " must be even and in [2, ", g.n_ - 1, "]"));
  }
  if (config.graph_seed().size() != Secret32::kSize) {
    return absl::InvalidArgumentError("secagg: graph seed must be 32 bytes");
  }
  g.complete_ = false;
  SeededRandom rng(reinterpret_cast<const uint8_t*>(config.graph_seed().data()));
  g.at_.resize(g.n_);
  for (uint32_t i = 0; i < g.n_; ++i) g.at_[i] = i;
  for (uint32_t i = g.n_ - 1; i > 0; --i) {  // Fisher-Yates
    std::swap(g.at_[i], g.at_[rng.Uniform(i + 1)]);
  }
  g.position_.resize(g.n_);
  for (uint32_t p = 0; p < g.n_; ++p) g.position_[g.at_[p]] = p;
  return g;
}

bool NeighbourGraph::AreNeighbours(uint32_t u, uint32_t v) const {
  if (u == v || u >= n_ || v >= n_) return false;
  if (complete_) return true;
  const uint32_t pu = position_[u], pv = position_[v];
  const uint32_t d = pu > pv ? pu - pv : pv - pu;
  return std::min(d, n_ - d) <= k_ / 2;
}

std::vector<uint32_t> NeighbourGraph::Neighbours(uint32_t u) const {
  std::vector<uint32_t> out;
  if (u >= n_) return out;
  if (complete_) {
    out.reserve(n_ - 1);
    for (uint32_t v = 0; v < n_; ++v) {
      if (v != u) out.push_back(v);
    }
    return out;
  }
  const uint32_t pu = position_[u];
  for (uint32_t j = 1; j <= k_ / 2; ++j) {
    out.push_back(at_[(pu + j) % n_]);
    out.push_back(at_[(pu + n_ - j) % n_]);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace fedlora::secagg
