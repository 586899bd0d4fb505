#include "fedlora/sim/simulator.h"

#include <torch/types.h>
#include <torch/utils.h>

#include <chrono>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "coordinator_options.h"
#include "fedlora/common/random.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/model/threads.h"
#include "fedlora/sim/cohort_trainer.h"
#include "sim_state.h"

namespace fedlora::sim {
namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

Simulator::Simulator(std::unique_ptr<State> state) : s_(std::move(state)) {}
Simulator::~Simulator() = default;

int Simulator::num_train_devices() const { return static_cast<int>(s_->devices.size()); }
int Simulator::num_heldout_users() const { return static_cast<int>(s_->heldout.size()); }
const std::string& Simulator::model_dir() const { return s_->model_dir; }
const std::string& Simulator::base_description() const { return s_->base_description; }

absl::StatusOr<std::unique_ptr<Simulator>> Simulator::Create(const SimConfig& config) {
  FEDLORA_RETURN_IF_ERROR(ValidateConfig(config));
  auto s = std::make_unique<State>();
  s->config = config;
  s->rng = std::make_unique<SeededRandom>(config.seed);
  model::ConfigureThreads({config.threads, 1});
  torch::manual_seed(config.seed);
  FEDLORA_RETURN_IF_ERROR(LoadPopulation(s.get()));
  const SimConfig& c = s->config;
  const int n = static_cast<int>(s->devices.size());
  if (c.seq_len > s->rt.model->config().max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat(
        "local.seq_len = ", c.seq_len, " exceeds the model's max_position_embeddings ",
        s->rt.model->config().max_position_embeddings, " (hint: lower local.seq_len)"));
  }

  s->lora.rank = c.rank;
  s->lora.alpha = c.alpha;
  s->lora.targets.clear();
  for (const auto& t : c.targets) {
    model::Proj p;
    if (!model::ParseProj(t, &p))
      return absl::InvalidArgumentError("lora.targets: unknown '" + t + "'");
    s->lora.targets.push_back(p);
  }
  FEDLORA_ASSIGN_OR_RETURN(adapters::LoraAdapter init,
                           adapters::LoraAdapter::Create(s->rt.model->config(), s->lora, c.seed));
  s->global = init.Flatten();
  s->dim = s->global.size();
  std::vector<float> shared_init = s->global;
  if (c.lora_method == "ffa") {
    s->freeze_a = true;
    s->shared = FlatBIndices(init);
  } else if (c.lora_method == "fedsa") {
    // FedSA-LoRA: A is shared, each device keeps its own B.
    s->personal_b = FlatBIndices(init);
    std::vector<bool> is_b(s->global.size(), false);
    for (size_t i : s->personal_b) is_b[i] = true;
    for (size_t i = 0; i < is_b.size(); ++i) {
      if (!is_b[i]) s->shared.push_back(i);
    }
  }
  if (!s->shared.empty()) {
    s->dim = s->shared.size();
    shared_init.resize(s->dim);
    for (size_t i = 0; i < s->dim; ++i) shared_init[i] = s->global[s->shared[i]];
  }
  s->work = std::make_unique<adapters::LoraAdapter>(std::move(init));

  FEDLORA_ASSIGN_OR_RETURN(auto kind, device::ParseOptimizer(c.local_optimizer));
  s->local.optimizer.kind = kind;
  s->local.optimizer.lr = c.local_lr;
  s->local.optimizer.max_grad_norm = c.local_clip;
  s->local.batch_size = c.local_batch;
  s->local.max_steps = c.local_steps;
  s->local.epochs = c.local_epochs;
  coordinator::ServerOptimizerConfig so;
  so.kind = c.server_optimizer;
  so.lr = c.server_lr;
  so.beta1 = c.server_beta1;
  so.beta2 = c.server_beta2;
  so.eps = c.server_eps;
  FEDLORA_ASSIGN_OR_RETURN(
      s->training, coordinator::FederatedTraining::Create(MakeRecipe(c, s->dim, n), so, shared_init));
  s->per_device =
      std::make_unique<privacy::ParticipationAccountant>(s->training->accountant().delta());
  if (c.dp != DpMode::kNone && c.epsilon_budget > 0) {
    FEDLORA_ASSIGN_OR_RETURN(double first, s->training->FirstRoundEpsilon());
    if (first > c.epsilon_budget) {
      return absl::FailedPreconditionError(
          absl::StrCat("privacy.epsilon_budget = ", c.epsilon_budget,
                       " would be exceeded by the first round alone (epsilon ", first, " at delta ",
                       s->training->accountant().delta(),
                       "; hint: raise privacy.noise_multiplier or lower the sampling rate)"));
    }
  }
  return std::unique_ptr<Simulator>(new Simulator(std::move(s)));
}

absl::StatusOr<SimResult> Simulator::Run(const std::function<void(const RoundRecord&)>& on_round) {
  State& s = *s_;
  const SimConfig& c = s.config;
  if (UsesCoordinatorEngine(c)) return RunCoordinatorEngine(&s, on_round);
  SimResult result;
  result.summary.config = ConfigToJson(c);
  result.summary.engine = EngineDescription(c);
  result.summary.delta = s.training->accountant().delta();
  result.summary.randomness =
      "seeded (simulation): device noise, cohort sampling and dropouts are drawn from "
      "generators seeded by run.seed; real devices and the coordinator draw from SecureRandom";
  auto run_start = Clock::now();
  const int n = static_cast<int>(s.devices.size());
  for (int round = 1; round <= c.rounds; ++round) {
    auto t0 = Clock::now();
    RoundRecord rec;
    rec.round = round;
    // Budget: stop before a round that would exceed it.
    const uint64_t round_seed = DeriveSeed(c.seed, 0x10000ULL + round);
    auto plan = s.training->PlanRound(DeriveSeed(round_seed, 0x707A7E));
    if (!plan.ok()) {
      if (plan.status().code() != absl::StatusCode::kFailedPrecondition) return plan.status();
      result.summary.stop_reason =
          absl::StrCat("stopped before round ", round, ": ", plan.status().message(),
                       " (privacy.epsilon_budget)");
      break;
    }
    if (plan->mechanism) {
      result.summary.privacy_assumption = privacy::DescribeAccounting(*plan->mechanism);
    }
    // Cohort sampling.
    std::vector<int> cohort;
    if (c.sampling == SamplingMode::kFixed) {
      std::vector<int> all(n);
      for (int i = 0; i < n; ++i) all[i] = i;
      for (int i = 0; i < c.cohort; ++i) {
        int j = i + static_cast<int>(s.rng->Uniform(static_cast<uint64_t>(n - i)));
        std::swap(all[i], all[j]);
      }
      cohort.assign(all.begin(), all.begin() + c.cohort);
      std::sort(cohort.begin(), cohort.end());
    } else {
      double q = c.poisson_rate > 0 ? c.poisson_rate : double(c.cohort) / n;
      for (int i = 0; i < n; ++i) {
        if (s.rng->UniformDouble() < q) cohort.push_back(i);
      }
    }
    rec.sampled = static_cast<int>(cohort.size());
    // Against the coordinator every sampled device pays for the round in full, released or not.
    if (plan->mechanism) {
      std::vector<std::string> ids;
      for (int d : cohort) ids.push_back(absl::StrCat(d));
      FEDLORA_RETURN_IF_ERROR(s.per_device->Charge(ids, *plan->mechanism));
    }
    rec.epsilon_coordinator = c.dp == DpMode::kNone ? std::numeric_limits<double>::infinity()
                                                    : s.per_device->WorstEpsilon();

    // Local training.
    std::vector<const device::TokenWindows*> windows;
    std::vector<uint64_t> seeds;
    for (int d : cohort) {
      windows.push_back(&s.devices[d].windows);
      seeds.push_back(DeriveSeed(round_seed, static_cast<uint64_t>(d)));
    }
    CohortResult trained;
    std::vector<std::vector<float>> starts;  // FedSA-LoRA: the global A with each device's B
    for (int d : cohort) {
      if (!s.personal_b.empty()) starts.push_back(StartFor(s, s.devices[d].user));
    }
    if (!cohort.empty()) {
      FEDLORA_ASSIGN_OR_RETURN(
          trained, TrainCohort(*s.rt.model, s.lora, s.global, windows, seeds, s.local,
                               c.train_mode, c.max_group, c.workers, s.freeze_a, false,
                               starts.empty() ? nullptr : &starts));
    }
    for (size_t k = 0; k < starts.size(); ++k) {  // each device keeps its trained B
      std::vector<float>& own = s.own_b[s.devices[cohort[k]].user];
      own.resize(s.personal_b.size());
      for (size_t j = 0; j < own.size(); ++j) {
        own[j] = starts[k][s.personal_b[j]] + trained.deltas[k][s.personal_b[j]];
      }
    }
    rec.train_seconds = trained.seconds;
    double loss_sum = 0;
    for (double l : trained.losses) loss_sum += l;
    rec.train_loss = trained.losses.empty() ? 0 : loss_sum / trained.losses.size();

    // Privacy path and secure aggregation.
    AggregationInput in;
    in.devices = cohort;
    in.deltas = std::move(trained.deltas);
    if (!s.shared.empty()) {  // FFA-LoRA: only B leaves the device; FedSA-LoRA: only A
      for (auto& d : in.deltas) {
        std::vector<float> b(s.shared.size());
        for (size_t i = 0; i < b.size(); ++i) b[i] = d[s.shared[i]];
        d = std::move(b);
      }
    }
    in.round_seed = round_seed;
    const double tokens_per_device = static_cast<double>(c.local_steps * c.local_batch * c.seq_len);
    for (int d : cohort) {
      in.users.push_back(s.dataset.users[s.devices[d].user].id);
      double sim_seconds = tokens_per_device / (kReferenceTokensPerSecond * s.devices[d].speed);
      in.missed_deadline.push_back(c.deadline > 0 && sim_seconds > c.deadline);
    }
    FEDLORA_ASSIGN_OR_RETURN(AggregationResult agg,
                             RunPrivacyRound(c, *s.training, *plan, in, *s.rng));
    rec.privacy_seconds = agg.seconds;
    rec.survivors = agg.survivors;
    rec.aborted = !agg.outcome.released;
    rec.abort_reason = agg.outcome.abort_reason;
    rec.dropped = std::move(agg.dropped);
    rec.mean_update_norm = agg.mean_norm;
    rec.clipped_fraction = agg.clipped_fraction;
    rec.clip = c.dp == DpMode::kNone ? 0.0 : agg.outcome.clip_used;
    rec.epsilon = agg.outcome.epsilon;
    if (s.shared.empty()) {
      s.global = s.training->global();
    } else {
      const std::vector<float>& b = s.training->global();
      for (size_t i = 0; i < s.shared.size(); ++i) s.global[s.shared[i]] = b[i];
    }

    // Evaluation every K rounds and after the last.
    if ((c.eval_every > 0 && round % c.eval_every == 0) || round == c.rounds) {
      FEDLORA_RETURN_IF_ERROR(
          EvaluatePopulations(&s, round == c.rounds, &rec.eval_participants, &rec.eval_heldout));
      result.summary.participants = rec.eval_participants;
      result.summary.heldout = rec.eval_heldout;
    }
    rec.seconds = Since(t0);
    result.summary.rounds_completed = round;
    result.rounds.push_back(rec);
    if (on_round) on_round(rec);
  }
  // A run stopped early by the budget still ends with an evaluation of what it released.
  if (!result.rounds.empty() && !result.rounds.back().eval_participants) {
    FEDLORA_RETURN_IF_ERROR(
        EvaluatePopulations(&s, true, &result.summary.participants, &result.summary.heldout));
  }
  result.summary.epsilon = s.training->epsilon();
  result.summary.epsilon_coordinator = c.dp == DpMode::kNone
                                           ? std::numeric_limits<double>::infinity()
                                           : s.per_device->WorstEpsilon();
  result.summary.max_rounds_per_device = s.per_device->MaxRounds();
  result.summary.seconds = Since(run_start);
  result.global_adapter = s.global;
  return result;
}

absl::Status Simulator::SaveAdapter(const std::vector<float>& flat, const std::string& dir) const {
  FEDLORA_RETURN_IF_ERROR(s_->work->Unflatten(flat.data(), flat.size()));
  return s_->work->SavePeft(dir);
}

}  // namespace fedlora::sim
