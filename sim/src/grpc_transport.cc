// `fedlora sim --transport grpc`: the same rounds as Simulator::Run, but the coordinator is a
// real `fedlora coordinator run` process on loopback TLS, or a local cluster of them behind
// edges and HAProxy (grpc.cluster; sim_coordinator.h), and every virtual device is a gRPC
// client of it (enrolled with a token, signing every call). What stays simulated: the devices
// share this process and one base model (the cohort trains through TrainCohort, as in
// process), and the dropout dice and deadline misses of the config decide which devices go
// silent at which phase.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "coordinator_options.h"
#include "fedlora/adapters/slot_layout.h"
#include "fedlora/common/adapter_blob.h"
#include "fedlora/common/child_process.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/lora_method.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/coordinator/coordinator_config.h"
#include "fedlora/coordinator/run_epsilons.h"
#include "fedlora/coordinator/state_folder.h"
#include "fedlora/coordinator/store.h"
#include "fedlora/device/coordinator_client.h"
#include "fedlora/device/lora_method_plan.h"
#include "fedlora/device/participation.h"
#include "fedlora/io/model_identity.h"
#include "fedlora/privacy/params_wire.h"
#include "fedlora/sim/cohort_trainer.h"
#include "ledger_epsilons.h"
#include "round_shards.h"
#include "sim_coordinator.h"
#include "sim_state.h"

namespace fedlora::sim {
namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// The coordinator allows 32 concurrent streams per connection; devices share channels of 16.
constexpr int kDevicesPerChannel = 16;

// One virtual device's network identity.
struct NetDevice {
  std::unique_ptr<Ed25519Key> key;
  std::unique_ptr<device::CoordinatorClient> client;
};

// Runs f(i) for i in [0, n) on one thread each (the check-ins of a round wait in parallel).
template <typename F>
void ForEachParallel(int n, F f) {
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (int i = 0; i < n; ++i) threads.emplace_back([&f, i] { f(i); });
  for (auto& t : threads) t.join();
}

// Fills `rec` from the store's record of `round` once it is no longer running (within 10 min:
// the deadlines of the secure-aggregation phases bound it); no record leaves `rec` as it is.
absl::Status ReadRoundOutcome(coordinator::Store& store, uint64_t round, RoundRecord* rec) {
  const auto until = Clock::now() + std::chrono::minutes(10);
  while (true) {
    FEDLORA_ASSIGN_OR_RETURN(auto rounds, store.ListRounds());
    bool running = false;
    for (const auto& r : rounds) {
      if (r.round != round) continue;
      running = r.state == "running";
      rec->aborted = r.state != "committed";
      rec->abort_reason = r.abort_reason;
      rec->survivors = r.summed;
    }
    if (!running) return absl::OkStatus();
    if (Clock::now() >= until) {
      return absl::DeadlineExceededError(absl::StrCat(
          "round ", round, " was still running 10 minutes after its devices' last answers"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// The shards this round's aggregator processes summed (their counters' growth since the last
// call), into `rec` and the run's per-aggregator totals.
absl::Status CountAggregatorShards(const SimCoordinator& coordinator, RoundRecord* rec,
                                   Summary* summary) {
  FEDLORA_ASSIGN_OR_RETURN(auto now, coordinator.AggregatorShards());
  for (const auto& [name, n] : now) {
    rec->shards_on_aggregators += static_cast<int>(n - summary->aggregator_shards[name]);
    summary->aggregator_shards[name] = n;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SimResult> Simulator::RunOverGrpc(
    const GrpcTransportOptions& options, const std::function<void(const RoundRecord&)>& on_round) {
  State& s = *s_;
  const SimConfig& c = s.config;
  FEDLORA_RETURN_IF_ERROR(ValidateConfig(c));
  namespace fs = std::filesystem;
  const int n = static_cast<int>(s.devices.size());
  const std::string work = (fs::path(c.out) / "grpc").string();
  std::error_code ec;
  fs::remove_all(work, ec);  // the output folder was prepared (and --force given) by the caller
  fs::create_directories(work, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", work, ": ", ec.message()));

  // The coordinator's state folder: the simulator's recipe, its initial adapter, n tokens; and
  // the coordinator: one process, or a local cluster (grpc.cluster).
  FEDLORA_ASSIGN_OR_RETURN(std::string base_sha, io::ModelSha256(s.model_dir));
  const coordinator::PrivacyRecipe recipe = MakeRecipe(c, s.dim, n);
  coordinator::StateFolderSpec spec;
  spec.config = coordinator::CoordinatorOptionsToJson(CoordinatorOptionsFor(c, recipe, base_sha));
  spec.initial.lora = s.lora.ToPeftJson();
  spec.initial.base_model_sha256 = base_sha;
  spec.initial.values = s.global;
  spec.initial.slots = adapters::SlotLayout(*s.work);  // ffa / fedsa: which values are shared
  spec.tokens = n;
  FEDLORA_ASSIGN_OR_RETURN(auto coordinator,
                           SimCoordinator::Start(c, options.fedlora_binary, work, std::move(spec)));
  const coordinator::StateFolderInfo& folder = coordinator->folder();
  const std::string address = coordinator->address();

  // Enrolment: one key pair and one token per device; channels shared by kDevicesPerChannel.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<NetDevice> net(n);
  device::ChannelOptions co;
  co.address = address;
  co.ca_pem_path = folder.ca_pem;
  for (int i = 0; i < n; ++i) {
    if (i % kDevicesPerChannel == 0) {
      FEDLORA_ASSIGN_OR_RETURN(auto ch, device::MakeChannel(co));
      channels.push_back(std::move(ch));
    }
    FEDLORA_ASSIGN_OR_RETURN(Ed25519Key key, Ed25519Key::Generate());
    v1::EnrollRequest req;
    req.set_token(folder.tokens[i]);
    req.set_public_key(key.PublicRaw());
    FEDLORA_ASSIGN_OR_RETURN(auto resp, device::CoordinatorClient::Enroll(channels.back(), req,
                                                                          absl::Seconds(30)));
    net[i].key = std::make_unique<Ed25519Key>(std::move(key));
    net[i].client = std::make_unique<device::CoordinatorClient>(channels.back(), net[i].key.get(),
                                                                resp.device_id());
    net[i].client->set_channel_options(co);  // an aggregator a task names: the same CA
  }
  FEDLORA_ASSIGN_OR_RETURN(auto store, coordinator::OpenStateStore(coordinator->state_dir()));
  // Each virtual device's state folder (FedSA-LoRA keeps its personal B there).
  auto device_dir = [&work](int d) { return absl::StrCat(work, "/devices/", d); };

  SimResult result;
  result.summary.config = ConfigToJson(c);
  result.summary.delta = recipe.delta;
  result.summary.engine = coordinator->Description();
  result.summary.randomness =
      "transport grpc: a real coordinator process (its own SecureRandom: sampling, rotation "
      "seeds, session nonces) and device noise and masks from SecureRandom; only the dropout "
      "dice and the model's initial adapter are seeded by run.seed";
  if (auto plan = s.training->PlanRound(0); plan.ok() && plan->mechanism) {
    result.summary.privacy_assumption = privacy::DescribeAccounting(*plan->mechanism);
  }
  auto run_start = Clock::now();
  const double tokens_per_device = static_cast<double>(c.local_steps * c.local_batch * c.seq_len);
  const double drop_p[4] = {c.dropout_advertise, c.dropout_share, c.dropout_masked,
                            c.dropout_unmask};

  for (int round = 1; round <= c.rounds; ++round) {
    auto t0 = Clock::now();
    RoundRecord rec;
    rec.round = round;
    // Every device checks in; the coordinator flips one coin each during its fixed selection
    // window and answers the sampled ones with the task when the window ends. The check-ins
    // may straddle two windows (each then holds too few devices and is aborted, charged), or
    // come between two (on a cluster an edge stops flipping coins 200 ms before the window's
    // end and sees the next window up to 200 ms late): the whole population checks in again,
    // at most eight times, each after the longest earliest-retry time its NO_ROUND_OPEN
    // rejections named (at least 300 ms, at most 5 s), as devices' pace steering waits.
    std::vector<absl::StatusOr<v1::CheckInResponse>> replies(n, absl::UnknownError("unset"));
    std::vector<int> cohort;
    std::string over, last_rejection;
    for (int attempt = 0; attempt < 8 && cohort.empty() && over.empty(); ++attempt) {
      uint32_t retry_ms = 300;
      if (attempt > 0) {
        for (int i = 0; i < n; ++i) {
          const auto& rej = replies[i]->rejection();
          if (rej.reason() == v1::REJECTION_NO_ROUND_OPEN && rej.retry_min_ms() > 0) {
            retry_ms = std::max(retry_ms, std::min<uint32_t>(rej.retry_min_ms(), 5000));
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(retry_ms));
      }
      ForEachParallel(n, [&](int i) {
        v1::CheckInRequest req;
        req.set_eligible(s.devices[i].windows.size() > 0);  // one bit, decided by the device
        req.set_base_model_sha256(base_sha);
        replies[i] = net[i].client->CheckIn(req, absl::Seconds(120));
      });
      for (int i = 0; i < n; ++i) {
        if (!replies[i].ok()) {
          return absl::UnavailableError(
              absl::StrCat("device ", i, " could not check in: ", replies[i].status().message()));
        }
        if (replies[i]->has_task()) {
          cohort.push_back(i);
        } else {
          const auto& rej = replies[i]->rejection();
          if (rej.reason() == v1::REJECTION_BUDGET_EXHAUSTED) over = rej.detail();
          if (rej.reason() != v1::REJECTION_NOT_SELECTED) last_rejection = rej.detail();
        }
      }
    }
    if (cohort.empty() && !over.empty()) {
      result.summary.stop_reason = absl::StrCat("stopped before round ", round, ": ", over);
      break;
    }
    rec.sampled = static_cast<int>(cohort.size());
    std::vector<uint64_t> seeds;
    std::vector<const device::TokenWindows*> windows;
    for (int d : cohort) {
      windows.push_back(&s.devices[d].windows);
      seeds.push_back(replies[d]->task().task_seed());
      NoteTaskShard(replies[d]->task(), &rec);
    }
    if (cohort.empty()) {
      rec.aborted = true;
      rec.abort_reason = last_rejection.empty() ? "no device was sampled" : last_rejection;
    } else {
      const v1::Task& task0 = replies[cohort[0]]->task();
      // Each sampled device downloads the global adapter (chunked, hash-checked).
      std::vector<absl::StatusOr<std::string>> blobs(cohort.size(), absl::UnknownError("unset"));
      ForEachParallel(static_cast<int>(cohort.size()), [&](int k) {
        const v1::Task& t = replies[cohort[k]]->task();
        blobs[k] = net[cohort[k]].client->Download(
            t.adapter_version(), t.adapter_sha256(),
            absl::StrCat(work, "/download-", cohort[k], ".partial"), absl::Minutes(5));
      });
      for (const auto& b : blobs) {
        if (!b.ok()) return b.status();
      }
      FEDLORA_ASSIGN_OR_RETURN(AdapterBlob blob, DecodeAdapterBlob(*blobs[0]));
      device::TrainOptions local = s.local;
      local.max_steps = task0.recipe().steps();
      local.batch_size = task0.recipe().batch_size();
      local.optimizer.lr = task0.recipe().lr();
      // The task's LoRA method, as a device runs it (device/lora_method_plan.h): each device's
      // start (fedsa: its own B, from its state folder) and what it sends.
      FEDLORA_ASSIGN_OR_RETURN(LoraMethod method, device::TaskLoraMethod(task0));
      std::vector<device::MethodPlan> plans;
      std::vector<std::vector<float>> starts;
      for (int d : cohort) {
        FEDLORA_ASSIGN_OR_RETURN(
            device::MethodPlan plan,
            device::PlanMethod(method, blob, adapters::SlotLayout(*s.work), device_dir(d)));
        if (method == LoraMethod::kFedSa) starts.push_back(plan.start);
        plans.push_back(std::move(plan));
      }
      FEDLORA_ASSIGN_OR_RETURN(
          CohortResult trained,
          TrainCohort(*s.rt.model, s.lora, blob.values, windows, seeds, local, c.train_mode,
                      c.max_group, c.workers, method == LoraMethod::kFfa, false,
                      starts.empty() ? nullptr : &starts));
      for (size_t k = 0; k < cohort.size(); ++k) {
        FEDLORA_ASSIGN_OR_RETURN(
            trained.deltas[k],
            device::FinishMethod(plans[k], blob, trained.deltas[k], device_dir(cohort[k])));
        if (method == LoraMethod::kFedSa) {  // the evaluation's view of each device's own B
          FEDLORA_ASSIGN_OR_RETURN(std::string bytes,
                                   ReadFileToString(device::PersonalBPath(device_dir(cohort[k]))));
          FEDLORA_ASSIGN_OR_RETURN(AdapterBlob own, DecodeAdapterBlob(bytes));
          s.own_b[s.devices[cohort[k]].user] = std::move(own.values);
        }
      }
      rec.train_seconds = trained.seconds;
      double loss_sum = 0;
      for (double l : trained.losses) loss_sum += l;
      rec.train_loss = loss_sum / trained.losses.size();

      // Dropout dice (simulation) decide who goes silent before which phase.
      std::vector<int> silent_before(cohort.size(), -1);
      for (size_t k = 0; k < cohort.size(); ++k) {
        const int d = cohort[k];
        const double sim_seconds = tokens_per_device / (kReferenceTokensPerSecond * s.devices[d].speed);
        if (c.deadline > 0 && sim_seconds > c.deadline) {
          silent_before[k] = 0;
          rec.dropped.push_back({d, s.dataset.users[s.devices[d].user].id, "training",
                                 "missed the round deadline"});
          continue;
        }
        for (int p = 0; p < 4; ++p) {
          if (s.rng->UniformDouble() < drop_p[p]) {
            silent_before[k] = p;
            rec.dropped.push_back({d, s.dataset.users[s.devices[d].user].id,
                                   secagg::PhaseName(static_cast<secagg::Phase>(p)),
                                   "dropout (simulated)"});
            break;
          }
        }
      }
      auto p0 = Clock::now();
      std::vector<device::ParticipationResult> outs(cohort.size());
      std::vector<absl::Status> statuses(cohort.size());
      ForEachParallel(static_cast<int>(cohort.size()), [&](int k) {
        const v1::Task& t = replies[cohort[k]]->task();
        SecureRandom rng;
        device::DevicePolicy policy;
        policy.phase_timeout = absl::Seconds(120);
        const int silent = silent_before[k];
        statuses[k] = device::SubmitUpdate(
            *net[cohort[k]].client, t, trained.deltas[k], policy, rng, &outs[k],
            [silent](int phase, v1::SecAggUpload*) { return phase != silent; });
      });
      rec.privacy_seconds = Since(p0);
      double norm_sum = 0;
      int clipped = 0;
      for (size_t k = 0; k < cohort.size(); ++k) {
        if (!statuses[k].ok()) return statuses[k];
        norm_sum += outs[k].update_norm;
        clipped += outs[k].clipped;
      }
      rec.mean_update_norm = norm_sum / cohort.size();
      rec.clipped_fraction = double(clipped) / cohort.size();
      FEDLORA_ASSIGN_OR_RETURN(privacy::RoundPrivacyParams params,
                               privacy::ParamsFromProto(task0.privacy()));
      rec.clip = params.clip;
      // The coordinator's record of the round: committed or aborted, and how many were summed.
      // With shards at aggregator processes the devices' last answers come from them, before
      // the leader has every shard's sum: wait until the leader has decided the round.
      FEDLORA_RETURN_IF_ERROR(ReadRoundOutcome(*store, task0.round(), &rec));
      FEDLORA_RETURN_IF_ERROR(CountAggregatorShards(*coordinator, &rec, &result.summary));
      FEDLORA_ASSIGN_OR_RETURN(coordinator::AdapterVersion latest, store->LatestAdapter());
      FEDLORA_ASSIGN_OR_RETURN(std::string latest_bytes, store->ReadBlob(latest.sha256));
      FEDLORA_ASSIGN_OR_RETURN(AdapterBlob latest_blob, DecodeAdapterBlob(latest_bytes));
      s.global = std::move(latest_blob.values);  // fedsa: the global B stays at its init
    }
    FEDLORA_RETURN_IF_ERROR(
        RecordLedgerEpsilons(*store, result.summary.delta, &rec, &result.summary));
    NoteRoundShards(rec, &result.summary);

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
  if (!result.rounds.empty() && !result.rounds.back().eval_participants) {
    FEDLORA_RETURN_IF_ERROR(
        EvaluatePopulations(&s, true, &result.summary.participants, &result.summary.heldout));
  }
  store.reset();
  // The devices hang up first: a server shutting down waits (up to its grace period) for
  // connections still open to it, the aggregators' 2 s each.
  net.clear();
  channels.clear();
  FEDLORA_RETURN_IF_ERROR(coordinator->Stop());
  result.summary.seconds = Since(run_start);
  result.global_adapter = s.global;
  return result;
}

}  // namespace fedlora::sim
