// The privacy path of one round, as phones and the coordinator run it: clip (fixed or
// adaptive), then either a plain mean (no DP), a trusted aggregator adding Gaussian noise
// (central DP), or the distributed discrete Gaussian encoded on each device and summed by
// secure aggregation with the real protocol states over the in-process transport.
#ifndef FEDLORA_SIM_AGGREGATION_H_
#define FEDLORA_SIM_AGGREGATION_H_

#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/privacy/clipping.h"
#include "fedlora/privacy/ddg_codec.h"
#include "fedlora/sim/report.h"
#include "fedlora/sim/sim_config.h"

namespace fedlora::sim {

struct AggregationInput {
  std::vector<int> devices;                // population indices of the cohort
  std::vector<std::string> users;          // their user ids (for the drop report)
  std::vector<std::vector<float>> deltas;  // per device, flat
  std::vector<bool> missed_deadline;       // stragglers: never report this round
  int expected_cohort = 0;                 // the cohort size the noise is calibrated for
  uint64_t round_seed = 0;
};

struct AggregationResult {
  bool aborted = false;
  std::string abort_reason;
  std::vector<float> mean_delta;  // estimate of the mean clipped delta
  int survivors = 0;
  std::vector<DropRecord> dropped;
  double mean_norm = 0;
  double clipped_fraction = 0;
  double clip = 0;                        // bound used this round
  std::optional<privacy::DdgParams> ddg;  // distributed mode: the parameters used
  double seconds = 0;
};

class Aggregator {
 public:
  // Validates the privacy settings (e.g. adaptive clipping's noise split, DDG parameters fit
  // in 2^bits) for a cohort of `expected_cohort`. INVALID_ARGUMENT / OUT_OF_RANGE naming the
  // config key.
  static absl::StatusOr<Aggregator> Create(const SimConfig& config, size_t dim,
                                           int expected_cohort);

  absl::StatusOr<AggregationResult> Run(const AggregationInput& input, std::mt19937_64& rng);

  double clip() const;
  // Noise multiplier on the values (after the adaptive-clipping split).
  double value_noise_multiplier() const { return value_noise_; }
  // The DDG parameters for the current clip (distributed mode).
  absl::StatusOr<privacy::DdgParams> CurrentDdgParams() const;

 private:
  Aggregator(const SimConfig& config, size_t dim, int expected_cohort)
      : config_(config), dim_(dim), expected_cohort_(expected_cohort) {}
  privacy::DdgConfig MakeDdgConfig() const;

  SimConfig config_;
  size_t dim_;
  int expected_cohort_;
  double fixed_clip_ = 0;
  double value_noise_ = 0;
  std::optional<privacy::AdaptiveClipper> clipper_;
};

}  // namespace fedlora::sim

#endif  // FEDLORA_SIM_AGGREGATION_H_
