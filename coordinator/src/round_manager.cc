#include "fedlora/coordinator/round_manager.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fedlora/common/adapter_blob.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/proto_bytes.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/coordinator/selection_coin.h"
#include "mechanism_json.h"
#include "nlohmann/json.hpp"
#include "round_states.h"

namespace fedlora::coordinator {

struct RoundManager::Impl {
  CoordinatorOptions options;
  Store* store = nullptr;
  MetricsRegistry* metrics = nullptr;
  RandomSource* rng = nullptr;
  std::unique_ptr<FederatedTraining> training;
  AdapterVersion adapter;
  AdapterBlob current;         // the latest version's blob (full adapter, slot layout)
  std::vector<size_t> shared;  // positions of the shared values in it (lora_method)
  int min_cohort = 0, max_cohort = 0, rounds_done = 0;

  mutable std::mutex mu;
  std::condition_variable cv;
  std::unique_ptr<RoundState> state;
  absl::Time state_entered;
  RoundData round;
  std::atomic<bool> stop{false};
  bool draining = false;  // after Drain(): every call is answered UNAVAILABLE at once
  std::thread driver;
  // The worker (Start()): runs the state's job (the round's finish) without `mu`.
  std::thread worker;
  std::condition_variable worker_cv;
  std::function<void()> job;  // posted, not yet taken by the worker
  bool worker_running = false;  // between Start() and Stop() (guarded by mu, as job is)
  bool worker_stop = false;
  double epsilon = 0;  // training->epsilon() as of the last Close (the job may be changing it)
  std::string published;  // the last selection window published (round/state/opened)

  absl::Time Now() const { return options.clock ? options.clock() : absl::Now(); }

  void Log(const std::string& line) const {
    if (options.log && !line.empty()) options.log(line);
  }

  // Loads the latest version, the clip and every charge from the store into `training`.
  absl::Status LoadFromStore() {
    FEDLORA_ASSIGN_OR_RETURN(adapter, store->LatestAdapter());
    FEDLORA_ASSIGN_OR_RETURN(std::string bytes, store->ReadBlob(adapter.sha256));
    FEDLORA_ASSIGN_OR_RETURN(AdapterBlob blob, DecodeAdapterBlob(bytes));
    if (!options.base_model_sha256.empty() && !blob.base_model_sha256.empty() &&
        blob.base_model_sha256 != options.base_model_sha256) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the state folder's adapter was made for base model ", blob.base_model_sha256,
          ", this coordinator serves ", options.base_model_sha256,
          " (hint: use the --model the folder was initialised with)"));
    }
    options.base_model_sha256 = blob.base_model_sha256;
    FEDLORA_ASSIGN_OR_RETURN(shared, SharedPositions(blob, options.lora_method));
    std::vector<privacy::RoundMechanism> charged;
    FEDLORA_ASSIGN_OR_RETURN(auto charges, store->Charges());
    for (const auto& c : charges) {
      FEDLORA_ASSIGN_OR_RETURN(privacy::RoundMechanism m, MechanismFromJson(c.mechanism));
      charged.push_back(std::move(m));
    }
    // Damaged or missing state is an error here, never a silent restart from scratch.
    auto run_state = store->OptimizerState();
    if (!run_state.ok()) {
      return absl::DataLossError(absl::StrCat(
          "the run state stored with adapter version ", adapter.version,
          " (adaptive clip, server-optimizer moments) cannot be read: ",
          run_state.status().message(),
          " (hint: the state folder is damaged; restore it from a backup)"));
    }
    std::vector<float> values = Gather(blob.values, shared);
    options.recipe.dim = values.size();
    if (!training) {
      FEDLORA_ASSIGN_OR_RETURN(
          training, FederatedTraining::Create(options.recipe, options.optimizer, values));
    }
    FEDLORA_RETURN_IF_ERROR(
        training->Restore(std::move(values), *run_state, /*initial=*/adapter.round == 0, charged));
    current = std::move(blob);
    return absl::OkStatus();
  }

  RoundContext Context(std::vector<std::function<void()>>& completions, absl::Time now) {
    return RoundContext{options,     *store,      *metrics,     *rng,    *training,    round,
                        completions, now,         adapter,      current, shared,       min_cohort,
                        max_cohort,  rounds_done, std::nullopt, false,   std::string()};
  }

  // Switches to `next`; records the phase and honours the crash hook.
  void Enter(std::unique_ptr<RoundState> next, absl::Time now) {
    if (state) {
      metrics->Observe("fedlora_round_phase_seconds", absl::ToDoubleSeconds(now - state_entered),
                       {state->name()});
    }
    state = std::move(next);
    state_entered = now;
    if (std::string(state->name()) == "selecting" && round.coin_key.empty()) {
      round.coin_key.resize(kCoinKeyBytes);
      rng->Fill(reinterpret_cast<uint8_t*>(round.coin_key.data()), kCoinKeyBytes);
    }
    PublishWindow(now, /*force=*/false);
    std::function<void()> work = state->TakeJob();
    if (!work) {
      RecordPhase(round.round, round.charged, state->name());
      return;
    }
    // A state with long work records its phase (an fsync'd write) on the worker too.
    Dispatch([this, work = std::move(work), r = round.round, charged = round.charged,
              name = std::string(state->name())] {
      RecordPhase(r, charged, name);
      work();
    });
  }

  // Multi-host (options.publish_window): the selection window as it stands, when it differs from
  // the last one published (a window opened or closed, training ended) or `force`.
  void PublishWindow(absl::Time now, bool force) {
    if (!options.publish_window || !state) return;
    SelectionWindow w;
    w.round = round.round;
    const std::string name = state->name();
    w.state = name == "selecting" ? "selecting" : state->terminal() ? "finished" : "closed";
    const absl::Time until = state->deadline() != absl::InfiniteFuture() ? state->deadline() : now;
    w.retry_after_ms = w.state == "closed" ? absl::ToUnixMillis(until) : 0;
    const std::string key = absl::StrCat(w.round, "/", w.state, "/",
                                         absl::ToUnixMillis(round.opened), "/", w.retry_after_ms);
    if (!force && key == published) return;
    published = key;
    w.opened_ms = absl::ToUnixMillis(round.opened);
    w.end_ms = absl::ToUnixMillis(round.opened + options.selection_window);
    if (w.state == "finished") w.detail = "training is over (`coordinator status` says why)";
    w.q = SamplingRate(training->aggregator().recipe());
    w.coin_key = round.coin_key;
    w.retry_min_ms = absl::ToInt64Milliseconds(options.retry_min);
    w.retry_max_ms = absl::ToInt64Milliseconds(options.retry_max);
    w.base_model_sha256 = options.base_model_sha256;
    w.min_examples = options.training.min_examples();
    options.publish_window(w);
  }

  // Records the phase of a charged round in the store (a restart names it in the abort
  // reason) and honours the crash hook.
  void RecordPhase(uint64_t r, bool charged, const std::string& name) {
    if (charged) (void)store->SetRoundPhase(r, name);
    if (options.crash_at == name) raise(SIGKILL);
  }

  // Closes every ready state. Called with `mu` held.
  void Advance(std::vector<std::function<void()>>& completions, absl::Time now,
               std::vector<std::string>& lines) {
    for (int guard = 0; guard < 16; ++guard) {
      RoundContext ctx = Context(completions, now);
      if (!state->Ready(ctx)) return;
      auto next = state->Close(ctx);
      rounds_done = ctx.rounds_done;
      if (ctx.committed) {
        adapter = *ctx.committed;
      }
      if (!ctx.log.empty()) lines.push_back(ctx.log);
      if (ctx.reload_from_store) {
        absl::Status s = LoadFromStore();
        if (!s.ok()) lines.push_back(absl::StrCat("cannot reload from the store: ", s.message()));
      }
      epsilon = training->epsilon();
      Enter(std::move(next), now);
    }
  }

  // Hands the job to the worker; without one (driven by Tick alone: the simulator and
  // fake-clock tests) runs it here, under `mu`, so such runs stay deterministic.
  void Dispatch(std::function<void()> j) {
    if (worker_running && !worker_stop) {
      job = std::move(j);
      worker_cv.notify_all();
    } else {
      j();
    }
  }

  void Run(std::vector<std::function<void()>>& completions, std::vector<std::string>& lines) {
    for (auto& c : completions) c();
    for (const auto& l : lines) Log(l);
  }
};

RoundManager::RoundManager(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RoundManager::~RoundManager() { Stop(); }

absl::StatusOr<std::unique_ptr<RoundManager>> RoundManager::Create(
    const CoordinatorOptions& options, Store* store, MetricsRegistry* metrics,
    RandomSource* rng) {
  if (options.recipe.mode != privacy::DpMode::kDistributed ||
      options.recipe.sampling != privacy::Sampling::kPoisson) {
    return absl::InvalidArgumentError(
        "coordinator: only distributed DP with Poisson sampling runs over the network (deltas "
        "leave devices only inside secure aggregation; selection is one coin per check-in)");
  }
  if (!rng->secure() && !options.allow_seeded_rng) {
    return absl::InvalidArgumentError(
        "coordinator: needs a cryptographically secure generator (sampling, rotation seeds, "
        "session nonces)");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  // max_cohort 0: the same default coordinator.json gets (DefaultMaxCohort), before the
  // training's DDG parameters are sized for it.
  if (impl->options.recipe.max_cohort == 0) {
    impl->options.recipe.max_cohort = DefaultMaxCohort(impl->options.recipe);
  }
  impl->store = store;
  impl->metrics = metrics;
  impl->rng = rng;
  auto loaded = store->LatestAdapter();
  if (!loaded.ok()) {
    return absl::FailedPreconditionError(
        "coordinator: the state folder holds no adapter (hint: run `fedlora coordinator init "
        "--state DIR --model DIR` first)");
  }
  FEDLORA_RETURN_IF_ERROR(impl->LoadFromStore());
  // A round left running by a crash: aborted with its reason; its charge (if any) stays.
  FEDLORA_ASSIGN_OR_RETURN(auto running, store->RunningRounds());
  for (const auto& r : running) {
    const std::string why =
        absl::StrCat("coordinator restarted during ", r.phase.empty() ? "selecting" : r.phase);
    FEDLORA_RETURN_IF_ERROR(store->AbortRound(r.round, why));
    impl->Log(absl::StrCat("round ", r.round, " aborted: ", why,
                           r.charged ? " (its privacy charge stays)" : ""));
  }
  FEDLORA_ASSIGN_OR_RETURN(auto rounds, store->ListRounds());
  uint64_t last = 0;
  for (const auto& r : rounds) {
    last = std::max(last, r.round);
    impl->rounds_done += r.state == "committed";
  }
  impl->min_cohort = std::max(2, MinClients(impl->options.recipe));
  impl->max_cohort = MaxCohort(impl->options.recipe);
  if (impl->max_cohort < impl->min_cohort) {
    return absl::InvalidArgumentError(
        absl::StrCat("coordinator: max_cohort ", impl->max_cohort, " is below the minimum cohort ",
                     impl->min_cohort,
                     " (max(2, min_clients)): no round could proceed (hint: raise "
                     "max_cohort or goal)"));
  }
  if (options.selection_window <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "coordinator: selection_window must be > 0 (hint: selection_window_s in coordinator.json)");
  }
  impl->round.round = last + 1;
  impl->round.opened = impl->Now();
  impl->epsilon = impl->training->epsilon();
  metrics->Set("fedlora_epsilon", impl->epsilon);
  metrics->Set("fedlora_adapter_version", static_cast<double>(impl->adapter.version));
  impl->Log(absl::StrFormat(
      "resumed at adapter version %d, %d rounds charged, epsilon %.4g; next round %d",
      impl->adapter.version, impl->training->accountant().rounds_charged(),
      impl->training->epsilon(), impl->round.round));
  std::unique_ptr<RoundState> first = MakeSelectingState();
  if (options.max_rounds > 0 && impl->rounds_done >= options.max_rounds) {
    first = MakeFinishedState(absl::StrCat("the round limit (", options.max_rounds,
                                           ") is reached"));
  }
  if (options.recipe.epsilon_budget > 0) {
    auto plan = impl->training->PlanRound(0);
    if (!plan.ok() && plan.status().code() == absl::StatusCode::kFailedPrecondition) {
      first = MakeFinishedState(std::string(plan.status().message()));
    }
  }
  impl->Enter(std::move(first), impl->Now());
  return std::unique_ptr<RoundManager>(new RoundManager(std::move(impl)));
}

void RoundManager::CheckIn(const std::string& device_id, const v1::CheckInRequest& request,
                           CheckInDone done) {
  std::vector<std::function<void()>> completions;
  std::vector<std::string> lines;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    const absl::Time now = impl_->Now();
    RoundContext ctx = impl_->Context(completions, now);
    if (impl_->draining) {
      completions.push_back([done] { done(absl::UnavailableError("coordinator shutting down"), {}); });
      done = nullptr;
    }
    const CoordinatorOptions& o = impl_->options;
    std::optional<v1::CheckInResponse> early =
        done ? RejectBeforeCoin(o.base_model_sha256, o.training.min_examples(), request,
                                o.retry_min, o.retry_max)
             : std::nullopt;
    if (!done) {
    } else if (early) {
      CountRejection(*impl_->metrics, early->rejection().reason());
      completions.push_back([done, reply = *early] { done(absl::OkStatus(), reply); });
    } else {
      impl_->state->CheckIn(ctx, device_id, request, std::move(done));
      impl_->Advance(completions, now, lines);
    }
  }
  impl_->cv.notify_all();
  impl_->Run(completions, lines);
}

void RoundManager::SecAgg(const std::string& device_id, secagg::Phase phase,
                          const v1::SecAggUpload& upload, const std::string& digest,
                          SecAggDone done) {
  const std::string id = digest.empty() ? Sha256(DeterministicBytes(upload)) : digest;
  std::vector<std::function<void()>> completions;
  std::vector<std::string> lines;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    const absl::Time now = impl_->Now();
    RoundContext ctx = impl_->Context(completions, now);
    if (impl_->draining) {
      completions.push_back([done] { done(absl::UnavailableError("coordinator shutting down"), {}); });
    } else {
      impl_->state->SecAgg(ctx, device_id, phase, upload, id, std::move(done));
    }
    impl_->Advance(completions, now, lines);
  }
  impl_->cv.notify_all();
  impl_->Run(completions, lines);
}

void RoundManager::Tick(absl::Time now) {
  std::vector<std::function<void()>> completions;
  std::vector<std::string> lines;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->Advance(completions, now, lines);
  }
  impl_->cv.notify_all();
  impl_->Run(completions, lines);
}

void RoundManager::Start() {
  impl_->stop = false;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->PublishWindow(impl_->Now(), /*force=*/true);
    impl_->worker_stop = false;
    impl_->worker_running = true;  // a job posted before the thread runs waits in `job`
  }
  impl_->worker = std::thread([this] {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(impl_->mu);
        impl_->worker_cv.wait(lock, [&] { return impl_->job || impl_->worker_stop; });
        if (!impl_->job) return;  // stopping, nothing posted
        job = std::move(impl_->job);
        impl_->job = nullptr;
      }
      job();
      Tick(impl_->Now());  // closes the finished state now, not at the driver's next tick
    }
  });
  impl_->driver = std::thread([this] {
    while (!impl_->stop) {
      Tick(impl_->Now());
      std::unique_lock<std::mutex> lock(impl_->mu);
      impl_->cv.wait_for(lock, std::chrono::milliseconds(10));
    }
  });
}

void RoundManager::Stop() {
  impl_->stop = true;
  impl_->cv.notify_all();
  if (impl_->driver.joinable()) impl_->driver.join();
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->worker_stop = true;
  }
  impl_->worker_cv.notify_all();
  // A finish already posted or running completes (a commit is never cut short; a kill -9
  // mid-commit is what the store's transactions are for).
  if (impl_->worker.joinable()) impl_->worker.join();
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->worker_running = false;
}

void RoundManager::Drain() {
  std::vector<std::function<void()>> completions;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->draining = true;
    const absl::Status s = absl::UnavailableError("coordinator shutting down; retry later");
    for (auto& [device, done] : impl_->round.waiting) {
      completions.push_back([done = done, s] { done(s, {}); });
    }
    impl_->round.waiting.clear();
    for (auto& [id, p] : impl_->round.pending) {
      completions.push_back([done = p.done, s] { done(s, {}); });
    }
    impl_->round.pending.clear();
  }
  for (auto& c : completions) c();
}

bool RoundManager::WaitUntilFinished(absl::Duration timeout) {
  const absl::Time until = absl::Now() + timeout;
  std::unique_lock<std::mutex> lock(impl_->mu);
  while (!impl_->state->terminal()) {
    if (absl::Now() >= until) return false;
    impl_->cv.wait_for(lock, std::chrono::milliseconds(50));
  }
  return true;
}

RoundSummary RoundManager::Current() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return {impl_->round.round, impl_->state->name()};
}

double RoundManager::epsilon() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->epsilon;
}

bool RoundManager::finished() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->state->terminal();
}

}  // namespace fedlora::coordinator
