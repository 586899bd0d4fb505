// One federated training run on the coordinator, transport-free: the global adapter, the
// server optimizer, the round aggregator and the accountant. Per round:
//
//   FederatedTraining::Plan plan = training.PlanRound(seed)   // refuses past the budget
//   ... devices train and run privacy::PrepareUpdate(plan.privacy) ...
//   distributed: secure aggregation (min_sum_devices from plan.session) ->
//                training.CompleteDistributed(plan, sum, num_summed)
//   central/none: training.CompleteCentral(plan, updates, rng)
//   or training.Abort(plan, reason) when the round cannot be released.
//
// A completed round applies the server optimizer step and charges the accountant; an aborted
// one changes nothing. Under Poisson sampling every aborted round is charged as if released
// (whether it is released depends on how many devices were sampled, which is private there);
// under fixed-size sampling a round aborted for too few survivors is not (that depends only on
// dropouts). A round whose decoded sum fails the norm bound (DecodedNormBound, a device sent
// an input outside its clip) is aborted and charged under either sampling: the decision was
// taken on the noisy sum.
// The simulator and the gRPC coordinator both drive this class.
#ifndef FEDLORA_COORDINATOR_FEDERATED_TRAINING_H_
#define FEDLORA_COORDINATOR_FEDERATED_TRAINING_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/coordinator/accountant.h"
#include "fedlora/coordinator/round_aggregator.h"
#include "fedlora/coordinator/server_optimizer.h"

namespace fedlora::coordinator {

struct ServerOptimizerConfig {
  ServerOptimizerKind kind = ServerOptimizerKind::kFedAvg;
  double lr = 1.0, beta1 = 0.9, beta2 = 0.99, eps = 1e-3;
};

struct RoundPlan {
  privacy::RoundPrivacyParams privacy;
  std::optional<privacy::RoundMechanism> mechanism;  // unset without DP
  std::optional<double> epsilon_if_released;
};

struct RoundOutcome {
  bool released = false;
  std::string abort_reason;
  int summed = 0;
  double clip_used = 0;
  double next_clip = 0;
  std::optional<double> noisy_unclipped_fraction;
  bool charged = false;
  double epsilon = 0;  // after this round (infinity without DP)
};

class FederatedTraining {
 public:
  static absl::StatusOr<std::unique_ptr<FederatedTraining>> Create(
      const PrivacyRecipe& recipe, const ServerOptimizerConfig& optimizer,
      std::vector<float> initial_global);

  // FAILED_PRECONDITION (with the epsilon it would reach) when the round would take epsilon
  // above the recipe's budget; the run should stop there.
  absl::StatusOr<RoundPlan> PlanRound(uint64_t rotation_seed) const;
  // Epsilon the first round alone would cost (for refusing a recipe up front).
  absl::StatusOr<double> FirstRoundEpsilon() const;

  // Fewer than min_clients summed: Abort. A decoded sum above the norm bound: aborted and
  // charged (outcome.released false, outcome.charged true, the reason names no count).
  absl::StatusOr<RoundOutcome> CompleteDistributed(const RoundPlan& plan,
                                                   const std::vector<uint32_t>& sum,
                                                   int num_summed);
  absl::StatusOr<RoundOutcome> CompleteCentral(
      const RoundPlan& plan, const std::vector<const privacy::PreparedUpdate*>& updates,
      RandomSource& rng);
  // The round is not released; charged under Poisson sampling (see above).
  absl::StatusOr<RoundOutcome> Abort(const RoundPlan& plan, const std::string& reason);

  // The run state stored with every committed version (Store::CommitRound's optimizer_state,
  // in the same transaction as the version): the adaptive clip reached and, for FedAdam and
  // FedYogi, the server optimizer's moments. Layout: one line of JSON {"clip", "server_optimizer",
  // "moments_bytes"}, then (adaptive optimizers) "\n" and the moments (ServerOptimizer::
  // EncodeMoments). A state of only JSON (older folders, FedAvg) is read as well.
  std::string EncodeState() const;

  // Restores the run after a coordinator restart: the global (shared) values of the latest
  // committed version, the state stored with it (EncodeState; "" for the initial adapter) and
  // every round charged so far (in order). `initial` says the latest version is the initial
  // adapter (no round committed yet): the moments start afresh there and only there.
  // INVALID_ARGUMENT for a wrong length or a bad clip; DATA_LOSS for a state that cannot be
  // read or, under FedAdam/FedYogi after a committed round, holds no moments (never a silent
  // restart from zero moments); FAILED_PRECONDITION when the state was written by another
  // server optimizer.
  absl::Status Restore(std::vector<float> global, std::string_view state, bool initial,
                       const std::vector<privacy::RoundMechanism>& charged);
  const std::vector<float>& global() const { return global_; }
  const RoundAggregator& aggregator() const { return aggregator_; }
  const PrivacyAccountant& accountant() const { return accountant_; }
  double epsilon() const;

 private:
  FederatedTraining(RoundAggregator aggregator, const ServerOptimizerConfig& config,
                    std::vector<float> global, double delta)
      : aggregator_(std::move(aggregator)),
        config_(config),
        optimizer_(config.kind, config.lr, config.beta1, config.beta2, config.eps, global.size()),
        global_(std::move(global)),
        accountant_(delta) {}
  absl::StatusOr<RoundOutcome> Release(const RoundPlan& plan, const AggregateResult& agg);
  absl::StatusOr<RoundOutcome> AbortRound(const RoundPlan& plan, const std::string& reason,
                                          bool charge);

  RoundAggregator aggregator_;
  ServerOptimizerConfig config_;
  ServerOptimizer optimizer_;
  std::vector<float> global_;
  PrivacyAccountant accountant_;
};

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_FEDERATED_TRAINING_H_
