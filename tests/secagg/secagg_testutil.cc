#include "secagg_testutil.h"

#include "fedlora/secagg/rng.h"

namespace fedlora::secagg::testing {

std::vector<std::vector<uint32_t>> RandomInputs(uint32_t n, uint64_t dim, int bits, uint64_t seed) {
  SeededRandom rng(seed);
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  std::vector<std::vector<uint32_t>> inputs(n, std::vector<uint32_t>(dim));
  for (auto& v : inputs) {
    for (auto& x : v) x = static_cast<uint32_t>(rng.NextU64() & mask);
  }
  return inputs;
}

RoundConfig MakeRoundConfig(uint32_t n, uint64_t dim, int bits, proto::SecAggGraph graph,
                            uint32_t threshold, uint32_t degree) {
  RoundConfig c;
  c.session.num_devices = n;
  c.session.dim = dim;
  c.session.bits = bits;
  c.session.graph = graph;
  c.session.threshold = threshold;
  c.session.degree = degree;
  c.threads = 2;
  return c;
}

std::vector<uint32_t> IncludedFromReport(const RoundResult& r) {
  std::vector<uint32_t> out;
  for (const auto& d : r.report.devices) {
    if (d.included_in_sum) out.push_back(d.id);
  }
  return out;
}

}  // namespace fedlora::secagg::testing
