#include "fedlora/sim/aggregation.h"

#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/privacy/gaussian_noise.h"
#include "fedlora/secagg/round_driver.h"

namespace fedlora::sim {
namespace {

const char* kPhaseKeys[] = {"advertise_keys", "share_keys", "masked_input", "unmasking"};

}  // namespace

absl::StatusOr<Aggregator> Aggregator::Create(const SimConfig& config, size_t dim,
                                              int expected_cohort) {
  Aggregator a(config, dim, expected_cohort);
  a.fixed_clip_ = config.clip;
  a.value_noise_ = config.dp == DpMode::kNone ? 0.0 : config.noise_multiplier;
  if (config.clip_mode == ClipMode::kAdaptive && config.dp != DpMode::kNone) {
    auto split = privacy::AdaptiveClipNoiseParams(config.noise_multiplier, expected_cohort);
    if (!split.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("privacy.noise_multiplier / privacy.clip_mode: ", split.status().message()));
    }
    a.value_noise_ = split->value_noise_multiplier;
    privacy::AdaptiveClipConfig cc;
    cc.initial_clip = config.clip;
    cc.target_quantile = config.target_quantile;
    cc.learning_rate = config.clip_lr;
    cc.expected_clients = expected_cohort;
    cc.clipped_count_stddev = split->clipped_count_stddev;
    auto clipper = privacy::AdaptiveClipper::Create(cc);
    if (!clipper.ok()) return clipper.status();
    a.clipper_ = std::move(*clipper);
  } else if (config.clip_mode == ClipMode::kAdaptive) {
    privacy::AdaptiveClipConfig cc;
    cc.initial_clip = config.clip;
    cc.target_quantile = config.target_quantile;
    cc.learning_rate = config.clip_lr;
    cc.expected_clients = expected_cohort;
    auto clipper = privacy::AdaptiveClipper::Create(cc);
    if (!clipper.ok()) return clipper.status();
    a.clipper_ = std::move(*clipper);
  }
  if (config.dp == DpMode::kDistributed) {
    auto p = a.CurrentDdgParams();
    if (!p.ok()) {
      return absl::Status(
          p.status().code(),
          absl::StrCat("privacy.bits / privacy.noise_multiplier: ", p.status().message()));
    }
  }
  return a;
}

double Aggregator::clip() const { return clipper_ ? clipper_->clip() : fixed_clip_; }

privacy::DdgConfig Aggregator::MakeDdgConfig() const {
  privacy::DdgConfig d;
  d.dim = dim_;
  d.expected_clients = expected_cohort_;
  d.min_clients =
      std::max(1, static_cast<int>(std::ceil(config_.min_survivors * expected_cohort_)));
  d.l2_clip = clip();
  d.noise_multiplier = value_noise_;
  d.bits = config_.bits;
  d.modclip_prob = config_.modclip_prob;
  return d;
}

absl::StatusOr<privacy::DdgParams> Aggregator::CurrentDdgParams() const {
  return privacy::ChooseDdgParams(MakeDdgConfig());
}

absl::StatusOr<AggregationResult> Aggregator::Run(const AggregationInput& in,
                                                  std::mt19937_64& rng) {
  auto t0 = std::chrono::steady_clock::now();
  AggregationResult r;
  r.clip = config_.dp == DpMode::kNone ? 0.0 : clip();
  const size_t n = in.deltas.size();
  // Stragglers and devices whose update is not finite never report.
  std::vector<size_t> reporting;
  double norm_sum = 0;
  int clipped = 0, measured = 0;
  for (size_t i = 0; i < n; ++i) {
    if (in.missed_deadline[i]) {
      r.dropped.push_back({in.devices[i], in.users[i], "training", "missed the round deadline"});
      continue;
    }
    absl::Status finite = privacy::CheckFinite(in.deltas[i].data(), in.deltas[i].size());
    if (!finite.ok()) {
      r.dropped.push_back({in.devices[i], in.users[i], "training", std::string(finite.message())});
      continue;
    }
    double norm = privacy::L2Norm(in.deltas[i].data(), in.deltas[i].size());
    norm_sum += norm;
    clipped += r.clip > 0 && norm > r.clip;
    ++measured;
    reporting.push_back(i);
  }
  r.mean_norm = measured ? norm_sum / measured : 0;
  r.clipped_fraction = measured ? double(clipped) / measured : 0;
  r.mean_delta.assign(dim_, 0.0f);

  if (config_.dp != DpMode::kDistributed) {
    // No secure aggregation: each phase's dropout still loses the update.
    const double keep = (1 - config_.dropout_advertise) * (1 - config_.dropout_share) *
                        (1 - config_.dropout_masked) * (1 - config_.dropout_unmask);
    std::vector<size_t> kept;
    for (size_t i : reporting) {
      double u = static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
      if (u < keep) {
        kept.push_back(i);
      } else {
        r.dropped.push_back({in.devices[i], in.users[i], "upload", "device went offline"});
      }
    }
    r.survivors = static_cast<int>(kept.size());
    if (kept.empty()) {
      r.aborted = true;
      r.abort_reason = "no device reported";
    } else if (config_.dp == DpMode::kNone) {
      for (size_t i : kept) {
        for (size_t j = 0; j < dim_; ++j) r.mean_delta[j] += in.deltas[i][j];
      }
      for (auto& v : r.mean_delta) v /= static_cast<float>(kept.size());
    } else {
      FEDLORA_ASSIGN_OR_RETURN(auto agg,
                               privacy::CentralDpAggregator::Create(dim_, r.clip, value_noise_));
      uint64_t below = 0;
      for (size_t i : kept) {
        FEDLORA_ASSIGN_OR_RETURN(auto cr, agg.Add(in.deltas[i]));
        below += privacy::AdaptiveClipper::ClipBit(cr.norm, r.clip);
      }
      std::vector<float> sum = agg.Release(rng);
      // Divide by the expected cohort (a public constant), as DP-FedAvg does.
      for (size_t j = 0; j < dim_; ++j) r.mean_delta[j] = sum[j] / in.expected_cohort;
      if (clipper_) FEDLORA_RETURN_IF_ERROR(clipper_->Update(below, kept.size(), rng).status());
    }
  } else {
    FEDLORA_ASSIGN_OR_RETURN(privacy::DdgParams params, CurrentDdgParams());
    r.ddg = params;
    FEDLORA_ASSIGN_OR_RETURN(privacy::DdgCodec codec, privacy::DdgCodec::Create(MakeDdgConfig()));
    const size_t vec_len = params.padded_dim + 1;  // + the adaptive-clipping bit
    std::vector<std::vector<uint32_t>> inputs(reporting.size());
    for (size_t k = 0; k < reporting.size(); ++k) {
      size_t i = reporting[k];
      std::mt19937_64 device_rng(in.round_seed ^ (0x9E3779B97F4A7C15ULL * (in.devices[i] + 1)));
      FEDLORA_ASSIGN_OR_RETURN(privacy::DdgEncodeStats st,
                               codec.Encode(in.deltas[i].data(), in.deltas[i].size(), in.round_seed,
                                            device_rng, &inputs[k]));
      inputs[k].resize(vec_len);
      inputs[k][params.padded_dim] = privacy::AdaptiveClipper::ClipBit(st.norm, r.clip);
    }
    secagg::RoundConfig rc;
    rc.session.num_devices = static_cast<uint32_t>(reporting.size());
    rc.session.dim = vec_len;
    rc.session.bits = config_.bits;
    rc.session.graph = config_.graph == GraphMode::kComplete ? proto::SECAGG_GRAPH_COMPLETE
                                                             : proto::SECAGG_GRAPH_KREGULAR;
    // Expected total dropout: the configured per-phase rates (at least 1%), capped so that
    // the complete graph's honest-majority threshold stays reachable.
    rc.session.expected_dropout_rate = std::min(
        0.45, std::max(0.01, 1 - (1 - config_.dropout_advertise) * (1 - config_.dropout_share) *
                                     (1 - config_.dropout_masked) * (1 - config_.dropout_unmask)));
    secagg::DropoutPlan plan;
    plan.probability = {config_.dropout_advertise, config_.dropout_share, config_.dropout_masked,
                        config_.dropout_unmask};
    secagg::DeterministicRng srng(in.round_seed);
    if (reporting.size() < 2) {
      r.aborted = true;
      r.abort_reason = "fewer than 2 devices reported";
    } else {
      auto round = secagg::RunInProcessRound(rc, inputs, plan, srng);
      if (!round.ok() && rc.session.graph == proto::SECAGG_GRAPH_KREGULAR &&
          round.status().code() == absl::StatusCode::kFailedPrecondition) {
        // Too few devices for a k-regular graph at the security target: use the complete one.
        rc.session.graph = proto::SECAGG_GRAPH_COMPLETE;
        round = secagg::RunInProcessRound(rc, inputs, plan, srng);
      }
      if (!round.ok()) return round.status();
      for (const auto& d : round->report.devices) {
        if (d.included_in_sum) continue;
        size_t i = reporting[d.id];
        std::string phase =
            d.dropped_in == secagg::Phase::kCompleted || d.dropped_in == secagg::Phase::kAborted
                ? "secagg"
                : kPhaseKeys[static_cast<int>(d.dropped_in)];
        std::string reason = secagg::DropReasonName(d.reason);
        if (!d.detail.empty()) reason += ": " + d.detail;
        r.dropped.push_back({in.devices[i], in.users[i], phase, reason});
      }
      if (round->aborted) {
        r.aborted = true;
        r.abort_reason = std::string(round->abort_status.message());
      } else {
        r.survivors = static_cast<int>(round->included_devices.size());
        FEDLORA_ASSIGN_OR_RETURN(std::vector<float> sum, codec.Decode(round->sum, in.round_seed));
        for (size_t j = 0; j < dim_; ++j) r.mean_delta[j] = sum[j] / std::max(r.survivors, 1);
        if (clipper_) {
          uint64_t below = round->sum[params.padded_dim];
          FEDLORA_RETURN_IF_ERROR(clipper_->Update(below, r.survivors, rng).status());
        }
      }
    }
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace fedlora::sim
