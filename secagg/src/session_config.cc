#include "fedlora/secagg/session_config.h"

#include "absl/strings/str_cat.h"
#include "derivations.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/secagg/graph_parameters.h"

namespace fedlora::secagg {

absl::StatusOr<proto::SecAggSessionConfig> MakeSessionConfig(const SessionParams& p,
                                                             RandomSource& rng) {
  if (p.num_devices < 2) {
    return absl::InvalidArgumentError("secagg: need at least 2 devices");
  }
  proto::SecAggSessionConfig c;
  c.set_num_devices(p.num_devices);
  c.set_dim(p.dim);
  c.set_bits(static_cast<uint32_t>(p.bits < 0 ? 0 : p.bits));
  c.set_graph(p.graph);
  if (p.graph == proto::SECAGG_GRAPH_COMPLETE) {
    c.set_degree(p.num_devices - 1);
    if (p.threshold != 0) {
      c.set_threshold(p.threshold);
    } else {
      FEDLORA_ASSIGN_OR_RETURN(
          uint32_t t,
          CompleteGraphThreshold(p.num_devices, p.expected_dropout_rate, p.corrupt_rate));
      c.set_threshold(t);
    }
  } else if (p.graph == proto::SECAGG_GRAPH_KREGULAR) {
    if (p.degree != 0) {
      c.set_degree(p.degree);
      c.set_threshold(p.threshold != 0 ? p.threshold : p.degree / 2 + 1);
    } else {
      FEDLORA_ASSIGN_OR_RETURN(
          GraphParameters gp,
          ComputeKRegularParameters(p.num_devices, p.expected_dropout_rate, p.corrupt_rate));
      c.set_degree(gp.degree);
      c.set_threshold(p.threshold != 0 ? p.threshold : gp.threshold);
    }
  } else {
    return absl::InvalidArgumentError("secagg: graph must be complete or kregular");
  }
  if (p.min_sum_devices > p.num_devices) {
    return absl::InvalidArgumentError(absl::StrCat(
        "secagg: min_sum_devices ", p.min_sum_devices, " exceeds the ", p.num_devices,
        " devices of the round (hint: the round cannot reach the noise it needs; abort it)"));
  }
  c.set_min_sum_devices(p.min_sum_devices);
  std::string nonce(32, '\0'), seed(32, '\0');
  rng.Fill(reinterpret_cast<uint8_t*>(&nonce[0]), nonce.size());
  rng.Fill(reinterpret_cast<uint8_t*>(&seed[0]), seed.size());
  c.set_round_nonce(nonce);
  c.set_graph_seed(seed);
  FEDLORA_RETURN_IF_ERROR(ValidateSessionConfig(c));
  return c;
}

}  // namespace fedlora::secagg
