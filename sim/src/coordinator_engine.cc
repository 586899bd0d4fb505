// Simulator::Run on the coordinator's round engine (rounds.engine = coordinator, or auto for
// distributed DP with Poisson sampling): each round is one coordinator round driven by
// CoordinatorDriver; the round's outcome, the global adapter and both epsilons come from the
// coordinator's store, exactly as in the gRPC rehearsal (grpc_transport.cc).
#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "coordinator_driver.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/coordinator/run_epsilons.h"
#include "ledger_epsilons.h"
#include "round_shards.h"
#include "sim_state.h"

namespace fedlora::sim {

absl::StatusOr<SimResult> RunCoordinatorEngine(
    Simulator::State* state, const std::function<void(const RoundRecord&)>& on_round) {
  Simulator::State& s = *state;
  const SimConfig& c = s.config;
  namespace fs = std::filesystem;
  const auto run_start = std::chrono::steady_clock::now();
  const std::string dir = (fs::path(c.out) / "coordinator").string();
  std::error_code ec;
  fs::remove_all(dir, ec);  // the output folder was prepared (and --force given) by the caller
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat("cannot create the coordinator's state folder ",
                                                    dir, ": ", ec.message(),
                                                    " (hint: run.out must be writable)"));
  }
  FEDLORA_ASSIGN_OR_RETURN(auto driver, CoordinatorDriver::Create(&s, dir));

  SimResult result;
  result.summary.config = ConfigToJson(c);
  result.summary.delta = driver->delta();
  result.summary.engine = EngineDescription(c);
  result.summary.randomness =
      "seeded (simulation): device noise, secure-aggregation keys, dropouts and the "
      "coordinator's generator (its Poisson coins, rotation seeds, session nonces) are drawn "
      "from generators seeded by run.seed; real devices and the coordinator draw from "
      "SecureRandom";
  if (auto plan = s.training->PlanRound(0); plan.ok() && plan->mechanism) {
    result.summary.privacy_assumption = privacy::DescribeAccounting(*plan->mechanism);
  }
  for (int round = 1; round <= c.rounds; ++round) {
    const auto t0 = std::chrono::steady_clock::now();
    RoundRecord rec;
    rec.round = round;
    std::string stop;
    FEDLORA_ASSIGN_OR_RETURN(bool ran, driver->RunRound(round, &rec, &stop));
    if (!ran) {
      result.summary.stop_reason = stop;
      break;
    }
    FEDLORA_RETURN_IF_ERROR(
        RecordLedgerEpsilons(driver->store(), driver->delta(), &rec, &result.summary));
    NoteRoundShards(rec, &result.summary);
    if ((c.eval_every > 0 && round % c.eval_every == 0) || round == c.rounds) {
      FEDLORA_RETURN_IF_ERROR(
          EvaluatePopulations(&s, round == c.rounds, &rec.eval_participants, &rec.eval_heldout));
      result.summary.participants = rec.eval_participants;
      result.summary.heldout = rec.eval_heldout;
    }
    rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    result.summary.rounds_completed = round;
    result.rounds.push_back(rec);
    if (on_round) on_round(rec);
  }
  // A run stopped early by the budget still ends with an evaluation of what it released.
  if (!result.rounds.empty() && !result.rounds.back().eval_participants) {
    FEDLORA_RETURN_IF_ERROR(
        EvaluatePopulations(&s, true, &result.summary.participants, &result.summary.heldout));
  }
  result.summary.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
  result.global_adapter = s.global;
  return result;
}

}  // namespace fedlora::sim
