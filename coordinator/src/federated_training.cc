#include "fedlora/coordinator/federated_training.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fedlora/common/status_macros.h"
#include "nlohmann/json.hpp"

namespace fedlora::coordinator {

using privacy::DpMode;

absl::StatusOr<std::unique_ptr<FederatedTraining>> FederatedTraining::Create(
    const PrivacyRecipe& recipe, const ServerOptimizerConfig& opt,
    std::vector<float> initial_global) {
  if (initial_global.size() != recipe.dim) {
    return absl::InvalidArgumentError(
        absl::StrFormat("initial adapter has %d entries, the recipe's dim is %d",
                        initial_global.size(), recipe.dim));
  }
  FEDLORA_ASSIGN_OR_RETURN(RoundAggregator agg, RoundAggregator::Create(recipe));
  return std::unique_ptr<FederatedTraining>(
      new FederatedTraining(std::move(agg), opt, std::move(initial_global), recipe.delta));
}

double FederatedTraining::epsilon() const {
  return aggregator_.recipe().mode == DpMode::kNone ? std::numeric_limits<double>::infinity()
                                                    : accountant_.epsilon();
}

absl::StatusOr<double> FederatedTraining::FirstRoundEpsilon() const {
  FEDLORA_ASSIGN_OR_RETURN(privacy::RoundPrivacyParams p, aggregator_.NextRoundParams(0));
  FEDLORA_ASSIGN_OR_RETURN(privacy::RoundMechanism m, aggregator_.Mechanism(p));
  PrivacyAccountant fresh(accountant_.delta());
  return fresh.EpsilonIfCharged(m);
}

absl::StatusOr<RoundPlan> FederatedTraining::PlanRound(uint64_t rotation_seed) const {
  RoundPlan plan;
  FEDLORA_ASSIGN_OR_RETURN(plan.privacy, aggregator_.NextRoundParams(rotation_seed));
  if (plan.privacy.mode == DpMode::kNone) return plan;
  FEDLORA_ASSIGN_OR_RETURN(privacy::RoundMechanism m, aggregator_.Mechanism(plan.privacy));
  FEDLORA_ASSIGN_OR_RETURN(double next, accountant_.EpsilonIfCharged(m));
  const double budget = aggregator_.recipe().epsilon_budget;
  if (budget > 0 && next > budget) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the next round would raise epsilon to %.4g, above the budget %g", next, budget));
  }
  plan.mechanism = m;
  plan.epsilon_if_released = next;
  return plan;
}

absl::StatusOr<RoundOutcome> FederatedTraining::Release(const RoundPlan& plan,
                                                        const AggregateResult& agg) {
  RoundOutcome out;
  // Apply first: a non-finite aggregate is refused before anything is charged or changed.
  FEDLORA_RETURN_IF_ERROR(optimizer_.Apply(agg.mean_delta, &global_));
  if (plan.mechanism) {
    FEDLORA_RETURN_IF_ERROR(accountant_.Charge(*plan.mechanism));
    out.charged = true;
  }
  out.released = true;
  out.summed = agg.summed;
  out.clip_used = agg.clip_used;
  out.next_clip = agg.next_clip;
  out.noisy_unclipped_fraction = agg.noisy_unclipped_fraction;
  out.epsilon = epsilon();
  return out;
}

absl::StatusOr<RoundOutcome> FederatedTraining::CompleteDistributed(
    const RoundPlan& plan, const std::vector<uint32_t>& sum, int num_summed) {
  if (num_summed < aggregator_.min_clients()) {
    return Abort(plan, absl::StrFormat("%d survivors < min_clients %d: the noise would be too "
                                       "small",
                                       num_summed, aggregator_.min_clients()));
  }
  FEDLORA_ASSIGN_OR_RETURN(AggregateResult agg,
                           aggregator_.FinishDistributed(plan.privacy, sum, num_summed));
  if (!agg.rejected.empty()) {
    // Decided on the noisy sum (a DP release): charged whatever the sampling.
    return AbortRound(plan, agg.rejected, /*charge=*/true);
  }
  return Release(plan, agg);
}

absl::StatusOr<RoundOutcome> FederatedTraining::CompleteCentral(
    const RoundPlan& plan, const std::vector<const privacy::PreparedUpdate*>& updates,
    RandomSource& rng) {
  if (updates.empty()) return Abort(plan, "no device reported");
  FEDLORA_ASSIGN_OR_RETURN(AggregateResult agg,
                           aggregator_.FinishCentral(plan.privacy, updates, rng));
  return Release(plan, agg);
}

absl::StatusOr<RoundOutcome> FederatedTraining::Abort(const RoundPlan& plan,
                                                      const std::string& reason) {
  // Under Poisson sampling whether a round is released depends on the private number of
  // sampled devices: charge it as if released.
  return AbortRound(plan, reason, aggregator_.recipe().sampling == privacy::Sampling::kPoisson);
}

absl::StatusOr<RoundOutcome> FederatedTraining::AbortRound(const RoundPlan& plan,
                                                           const std::string& reason, bool charge) {
  RoundOutcome out;
  out.abort_reason = reason;
  out.clip_used = plan.privacy.clip;
  out.next_clip = aggregator_.clip();
  if (plan.mechanism && charge) {
    FEDLORA_RETURN_IF_ERROR(accountant_.Charge(*plan.mechanism));
    out.charged = true;
  }
  out.epsilon = epsilon();
  return out;
}

std::string FederatedTraining::EncodeState() const {
  const std::string moments = optimizer_.EncodeMoments();
  nlohmann::json header = {{"clip", aggregator_.clip()},
                           {"server_optimizer", ServerOptimizerName(optimizer_.kind())},
                           {"moments_bytes", moments.size()}};
  std::string out = header.dump();  // one line: dump() without indent writes no newline
  if (!moments.empty()) out += "\n" + moments;
  return out;
}

absl::Status FederatedTraining::Restore(std::vector<float> global, std::string_view state,
                                        bool initial,
                                        const std::vector<privacy::RoundMechanism>& charged) {
  if (global.size() != global_.size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("restore: adapter has %d shared entries, the run's dim is %d",
                        global.size(), global_.size()));
  }
  double clip = aggregator_.recipe().clip;
  std::string_view moments;
  std::string written_by;
  if (!state.empty()) {
    const size_t nl = state.find('\n');
    const nlohmann::json header =
        nlohmann::json::parse(state.substr(0, nl), nullptr, /*allow_exceptions=*/false);
    if (header.is_discarded() || !header.is_object()) {
      return absl::DataLossError(
          "restore: the run state stored with the latest adapter version is not readable "
          "(hint: the state folder is damaged; restore it from a backup)");
    }
    if (header.contains("clip") && header["clip"].is_number()) clip = header["clip"].get<double>();
    if (header.contains("server_optimizer") && header["server_optimizer"].is_string()) {
      written_by = header["server_optimizer"].get<std::string>();
    }
    if (nl != std::string_view::npos) moments = state.substr(nl + 1);
    const uint64_t want = header.value("moments_bytes", uint64_t{0});
    if (moments.size() != want) {
      return absl::DataLossError(absl::StrFormat(
          "restore: the stored server-optimizer moments are %d bytes, their header says %d "
          "(hint: the state folder is damaged; restore it from a backup)",
          moments.size(), want));
    }
  }
  const char* kind = ServerOptimizerName(optimizer_.kind());
  if (!written_by.empty() && written_by != kind) {
    return absl::FailedPreconditionError(absl::StrCat(
        "restore: the run was written by server optimizer ", written_by, ", this run uses ", kind,
        " (hint: set server_optimizer back in coordinator.json, or start a new population)"));
  }
  ServerOptimizer optimizer(config_.kind, config_.lr, config_.beta1, config_.beta2, config_.eps,
                            global_.size());
  if (optimizer.has_moments() && !initial) {
    if (moments.empty()) {
      return absl::DataLossError(absl::StrCat(
          "restore: the latest adapter version has no ", kind,
          " moments in the store; restarting them from zero would change the run (hint: the "
          "state folder is damaged or was written without them; restore it from a backup or "
          "start a new population)"));
    }
    FEDLORA_RETURN_IF_ERROR(optimizer.RestoreMoments(moments));
  }
  FEDLORA_RETURN_IF_ERROR(aggregator_.RestoreClip(clip));
  PrivacyAccountant fresh(accountant_.delta());
  for (const auto& m : charged) FEDLORA_RETURN_IF_ERROR(fresh.Charge(m));
  accountant_ = fresh;
  optimizer_ = std::move(optimizer);
  global_ = std::move(global);
  return absl::OkStatus();
}

}  // namespace fedlora::coordinator
