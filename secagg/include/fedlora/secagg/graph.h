// Who shares secrets and masks with whom. The complete graph (Bonawitz et al. 2017) links
// every pair; the k-regular graph (SecAgg+, Bell et al. 2020) is a Harary graph H(k, n) on a
// ring whose positions are a random permutation drawn from the session's graph seed, so
// every device can compute its own neighbourhood in O(n) and the server any pair in O(1).
#ifndef FEDLORA_SECAGG_GRAPH_H_
#define FEDLORA_SECAGG_GRAPH_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/proto/secagg.pb.h"

namespace fedlora::secagg {

class NeighbourGraph {
 public:
  // INVALID_ARGUMENT for an unspecified graph kind, n < 2, a k-regular degree that is odd,
  // zero or >= n, a complete graph whose degree is not n - 1, or a graph seed not 32 bytes.
  static absl::StatusOr<NeighbourGraph> Create(const proto::SecAggSessionConfig& config);

  uint32_t num_devices() const { return n_; }
  uint32_t degree() const { return k_; }
  // True when u != v are linked.
  bool AreNeighbours(uint32_t u, uint32_t v) const;
  // u's neighbours (excluding u), ascending.
  std::vector<uint32_t> Neighbours(uint32_t u) const;

 private:
  uint32_t n_ = 0;
  uint32_t k_ = 0;
  bool complete_ = true;
  std::vector<uint32_t> position_;  // device -> ring position (k-regular only)
  std::vector<uint32_t> at_;        // ring position -> device
};

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_GRAPH_H_
