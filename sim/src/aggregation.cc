#include "fedlora/sim/aggregation.h"

#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/privacy/defaults.h"
#include "fedlora/privacy/prepare_update.h"
#include "fedlora/secagg/round_driver.h"

namespace fedlora::sim {
namespace {

const char* kPhaseKeys[] = {"advertise_keys", "share_keys", "masked_input", "unmasking"};

double KeepProbability(const SimConfig& c) {
  return (1 - c.dropout_advertise) * (1 - c.dropout_share) * (1 - c.dropout_masked) *
         (1 - c.dropout_unmask);
}

}  // namespace

coordinator::PrivacyRecipe MakeRecipe(const SimConfig& c, size_t dim, int population) {
  coordinator::PrivacyRecipe r;
  r.mode = c.dp;
  r.dim = dim;
  r.population = population;
  r.sampling = c.sampling == SamplingMode::kFixed ? privacy::Sampling::kFixedSize
                                                  : privacy::Sampling::kPoisson;
  r.poisson_rate = c.sampling == SamplingMode::kPoisson
                       ? (c.poisson_rate > 0 ? c.poisson_rate : double(c.cohort) / population)
                       : 0.0;
  r.expected_cohort = c.sampling == SamplingMode::kFixed
                          ? c.cohort
                          : std::max(1, static_cast<int>(std::lround(r.poisson_rate * population)));
  r.noise_multiplier = c.noise_multiplier;
  r.clip = c.clip;
  r.adaptive_clip = c.clip_mode == ClipMode::kAdaptive;
  r.target_quantile = c.target_quantile;
  r.clip_lr = c.clip_lr;
  r.bits = c.bits;
  r.min_survivors = c.min_survivors;
  r.modclip_prob = c.modclip_prob;
  r.max_shard_size = c.max_shard_size;  // the coordinator engines only (ValidateConfig)
  r.delta = c.delta > 0 ? c.delta : privacy::DefaultDelta(static_cast<double>(population));
  r.epsilon_budget = c.epsilon_budget;
  return r;
}

absl::StatusOr<AggregationResult> RunPrivacyRound(const SimConfig& config,
                                                  coordinator::FederatedTraining& training,
                                                  const coordinator::RoundPlan& plan,
                                                  AggregationInput& in, RandomSource& dice) {
  auto t0 = std::chrono::steady_clock::now();
  AggregationResult r;
  // Devices: stragglers never report; the others privatize their update on the device.
  std::vector<size_t> reporting;
  std::vector<privacy::PreparedUpdate> prepared;
  double norm_sum = 0;
  int clipped = 0;
  privacy::PrepareOptions sim_noise;
  sim_noise.allow_seeded_noise = true;  // simulation: the report says the noise was seeded
  for (size_t i = 0; i < in.deltas.size(); ++i) {
    if (in.missed_deadline[i]) {
      r.dropped.push_back({in.devices[i], in.users[i], "training", "missed the round deadline"});
      continue;
    }
    SeededRandom device_rng(DeriveSeed(in.round_seed, 0xD0000000ULL + in.devices[i]));
    auto up = privacy::PrepareUpdate(in.deltas[i].data(), in.deltas[i].size(), plan.privacy,
                                     device_rng, sim_noise);
    if (!up.ok()) {
      if (up.status().code() != absl::StatusCode::kInvalidArgument) return up.status();
      r.dropped.push_back(
          {in.devices[i], in.users[i], "training", std::string(up.status().message())});
      continue;
    }
    norm_sum += up->norm;
    clipped += up->clipped;
    reporting.push_back(i);
    prepared.push_back(std::move(*up));
  }
  const int measured = static_cast<int>(reporting.size());
  r.mean_norm = measured ? norm_sum / measured : 0;
  r.clipped_fraction = measured ? double(clipped) / measured : 0;

  if (config.dp != DpMode::kDistributed) {
    // A trusted aggregator: each phase's dropout still loses the update.
    const double keep = KeepProbability(config);
    std::vector<const privacy::PreparedUpdate*> kept;
    for (size_t k = 0; k < reporting.size(); ++k) {
      const size_t i = reporting[k];
      if (dice.UniformDouble() < keep) {
        kept.push_back(&prepared[k]);
      } else {
        r.dropped.push_back({in.devices[i], in.users[i], "upload", "device went offline"});
      }
    }
    r.survivors = static_cast<int>(kept.size());
    FEDLORA_ASSIGN_OR_RETURN(r.outcome, training.CompleteCentral(plan, kept, dice));
  } else if (measured < training.aggregator().min_clients() || measured < 2) {
    r.survivors = 0;
    FEDLORA_ASSIGN_OR_RETURN(
        r.outcome, training.Abort(plan, absl::StrCat(measured, " devices reported < min_clients ",
                                                     training.aggregator().min_clients(),
                                                     ": the noise would be too small")));
  } else {
    std::vector<std::vector<uint32_t>> inputs;
    inputs.reserve(prepared.size());
    for (auto& p : prepared) inputs.push_back(std::move(p.secagg_input));
    secagg::RoundConfig rc;
    FEDLORA_ASSIGN_OR_RETURN(rc.session, training.aggregator().SessionFor(
                                             plan.privacy, static_cast<uint32_t>(measured)));
    rc.session.graph = config.graph == GraphMode::kComplete ? proto::SECAGG_GRAPH_COMPLETE
                                                            : proto::SECAGG_GRAPH_KREGULAR;
    // Expected total dropout: the configured per-phase rates (at least 1%), capped so that
    // the complete graph's honest-majority threshold stays reachable.
    rc.session.expected_dropout_rate = std::min(0.45, std::max(0.01, 1 - KeepProbability(config)));
    secagg::DropoutPlan drop;
    drop.probability = {config.dropout_advertise, config.dropout_share, config.dropout_masked,
                        config.dropout_unmask};
    auto round = secagg::RunInProcessRound(rc, inputs, drop, dice);
    if (!round.ok() && rc.session.graph == proto::SECAGG_GRAPH_KREGULAR &&
        round.status().code() == absl::StatusCode::kFailedPrecondition) {
      // Too few devices for a k-regular graph at the security target: use the complete one.
      rc.session.graph = proto::SECAGG_GRAPH_COMPLETE;
      round = secagg::RunInProcessRound(rc, inputs, drop, dice);
    }
    if (!round.ok()) return round.status();
    for (const auto& d : round->report.devices) {
      if (d.included_in_sum) continue;
      const size_t i = reporting[d.id];
      std::string phase =
          d.dropped_in == secagg::Phase::kCompleted || d.dropped_in == secagg::Phase::kAborted
              ? "secagg"
              : kPhaseKeys[static_cast<int>(d.dropped_in)];
      std::string reason = secagg::DropReasonName(d.reason);
      if (!d.detail.empty()) reason += ": " + d.detail;
      r.dropped.push_back({in.devices[i], in.users[i], phase, reason});
    }
    if (round->aborted) {
      FEDLORA_ASSIGN_OR_RETURN(r.outcome,
                               training.Abort(plan, std::string(round->abort_status.message())));
    } else {
      r.survivors = static_cast<int>(round->included_devices.size());
      FEDLORA_ASSIGN_OR_RETURN(r.outcome,
                               training.CompleteDistributed(plan, round->sum, r.survivors));
    }
  }
  if (!r.outcome.released) r.survivors = 0;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace fedlora::sim
