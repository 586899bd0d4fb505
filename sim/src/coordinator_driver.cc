#include "coordinator_driver.h"

#include <algorithm>
#include <chrono>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "coordinator_options.h"
#include "fedlora/common/adapter_blob.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/coordinator/coordinator_config.h"
#include "fedlora/coordinator/state_folder.h"
#include "fedlora/io/model_identity.h"
#include "fedlora/privacy/params_wire.h"
#include "fedlora/privacy/prepare_update.h"
#include "fedlora/secagg/device.h"
#include "fedlora/sim/cohort_trainer.h"
#include "round_shards.h"

namespace fedlora::sim {
namespace {

// The virtual clock never jumps further than this while the coordinator waits for a
// deadline, so that any deadline closes within a second of its time.
constexpr absl::Duration kMaxStep = absl::Seconds(1);
// Check-ins are spread over this much of the round's opening, the slowest device last.
constexpr absl::Duration kCheckInSpread = absl::Milliseconds(500);
// A device of speed 1 answers a later secure-aggregation phase after this long.
constexpr double kPhaseSeconds = 0.05;
// No coordinator round lasts this long in virtual time (a broken rule, not a slow device).
constexpr absl::Duration kRoundLimit = absl::Hours(24 * 7);

using Outbox = secagg::LastMessageOutbox;

std::string DeviceId(int d) { return absl::StrCat("sim-", d); }

}  // namespace

struct CoordinatorDriver::Device {
  int index = 0;
  v1::Task task;
  Outbox outbox;
  std::unique_ptr<SeededRandom> rng;  // secure-aggregation keys and masks (simulation)
  std::unique_ptr<secagg::SecAggDevice> secagg;
  double train_seconds = 0;  // simulated
  int silent_before = -1;    // dropout dice: the phase the device goes silent before
  bool done = false;         // included, dropped or told the round ended
  bool included = false;
  std::string detail;  // the coordinator's last word to it
};

CoordinatorDriver::~CoordinatorDriver() { manager_.reset(); }

absl::StatusOr<std::unique_ptr<CoordinatorDriver>> CoordinatorDriver::Create(
    Simulator::State* s, const std::string& dir) {
  const SimConfig& c = s->config;
  std::unique_ptr<CoordinatorDriver> d(new CoordinatorDriver());
  d->s_ = s;
  FEDLORA_ASSIGN_OR_RETURN(d->base_sha_, io::ModelSha256(s->model_dir));
  const coordinator::PrivacyRecipe recipe =
      MakeRecipe(c, s->dim, static_cast<int>(s->devices.size()));
  d->delta_ = recipe.delta;
  coordinator::CoordinatorOptions options = CoordinatorOptionsFor(c, recipe, d->base_sha_);
  if (c.deadline > 0) options.train_deadline = absl::Seconds(c.deadline);
  coordinator::StateFolderSpec spec;
  spec.state_dir = dir;
  spec.config = coordinator::CoordinatorOptionsToJson(options);
  spec.initial.lora = s->lora.ToPeftJson();
  spec.initial.base_model_sha256 = d->base_sha_;
  spec.initial.values = s->global;
  spec.tokens = 0;  // in process: no enrolment
  FEDLORA_RETURN_IF_ERROR(coordinator::CreateStateFolder(spec).status());
  FEDLORA_ASSIGN_OR_RETURN(d->store_, coordinator::OpenSqliteStore(dir));

  d->now_ = absl::FromUnixSeconds(1700000000);  // virtual: a run repeats to the bit
  d->log_path_ = dir + "/coordinator.log";
  CoordinatorDriver* self = d.get();
  options.clock = [self] { return self->now_; };
  options.log = [self](const std::string& line) {
    self->log_.push_back(line);
    std::ofstream(self->log_path_, std::ios::app) << line << "\n";
  };
  options.allow_seeded_rng = true;  // the report says the run was seeded
  d->rng_ = std::make_unique<SeededRandom>(DeriveSeed(c.seed, 0xC00D));
  d->metrics_ = std::make_unique<coordinator::MetricsRegistry>();
  coordinator::DefineCoordinatorMetrics(*d->metrics_);
  FEDLORA_ASSIGN_OR_RETURN(
      d->manager_, coordinator::RoundManager::Create(options, d->store_.get(), d->metrics_.get(),
                                                     d->rng_.get()));
  return d;
}

bool CoordinatorDriver::RoundOver() const {
  return manager_->finished() || manager_->Current().round != round_;
}

void CoordinatorDriver::Execute(const Event& e) {
  if (e.phase < 0) {
    v1::CheckInRequest req;
    req.set_eligible(s_->devices[e.device].windows.size() > 0);  // one bit, decided by the device
    req.set_base_model_sha256(base_sha_);
    const int d = e.device;
    manager_->CheckIn(DeviceId(d), req, [this, d](absl::Status st, v1::CheckInResponse r) {
      checkins_.push_back({d, std::move(st), std::move(r)});
    });
    return;
  }
  Device& dev = *devices_.at(e.device);
  v1::SecAggUpload upload;
  upload.set_round(dev.task.round());
  if (dev.done) return;
  if (!dev.outbox.Take(upload.mutable_message())) {
    Drop(dev, secagg::PhaseName(static_cast<secagg::Phase>(e.phase)),
         absl::StrCat("secure aggregation stopped: ", dev.secagg->abort_reason()));
    return;
  }
  const int d = e.device, phase = e.phase;
  manager_->SecAgg(DeviceId(d), static_cast<secagg::Phase>(phase), upload, "",
                   [this, d, phase](absl::Status st, v1::SecAggDownload r) {
                     uploads_.push_back({d, phase, std::move(st), std::move(r)});
                   });
}

void CoordinatorDriver::Drop(Device& d, const std::string& phase, const std::string& reason) {
  if (d.done) return;
  d.done = true;
  drops_.push_back({d.index, s_->dataset.users[s_->devices[d.index].user].id, phase, reason});
}

absl::Status CoordinatorDriver::StartTasked(std::vector<std::pair<int, v1::Task>> tasked,
                                            RoundRecord* rec) {
  const SimConfig& c = s_->config;
  std::sort(tasked.begin(), tasked.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  const v1::Task& task0 = tasked[0].second;
  // The global adapter the task names, as a device would download it.
  FEDLORA_ASSIGN_OR_RETURN(std::string bytes, store_->ReadBlob(task0.adapter_sha256()));
  FEDLORA_ASSIGN_OR_RETURN(AdapterBlob blob, DecodeAdapterBlob(bytes));
  std::vector<const device::TokenWindows*> windows;
  std::vector<uint64_t> seeds;
  for (const auto& [d, task] : tasked) {
    windows.push_back(&s_->devices[d].windows);
    seeds.push_back(task.task_seed());
  }
  FEDLORA_ASSIGN_OR_RETURN(CohortResult trained,
                           TrainCohort(*s_->rt.model, s_->lora, blob.values, windows, seeds,
                                       s_->local, c.train_mode, c.max_group, c.workers));
  rec->train_seconds += trained.seconds;
  train_wall_ += trained.seconds;
  for (double l : trained.losses) loss_sum_ += l;
  FEDLORA_ASSIGN_OR_RETURN(privacy::RoundPrivacyParams params,
                           privacy::ParamsFromProto(task0.privacy()));
  rec->clip = params.clip;
  const double drop_p[4] = {c.dropout_advertise, c.dropout_share, c.dropout_masked,
                            c.dropout_unmask};
  const double tokens = static_cast<double>(c.local_steps * c.local_batch * c.seq_len);
  privacy::PrepareOptions sim_noise;
  sim_noise.allow_seeded_noise = true;  // simulation: the report says the noise was seeded
  for (size_t k = 0; k < tasked.size(); ++k) {
    auto dev = std::make_unique<Device>();
    Device& d = *dev;
    d.index = tasked[k].first;
    d.task = std::move(tasked[k].second);
    NoteTaskShard(d.task, rec);
    d.train_seconds = tokens / (kReferenceTokensPerSecond * s_->devices[d.index].speed);
    devices_[d.index] = std::move(dev);
    for (int p = 0; p < secagg::kNumProtocolPhases; ++p) {
      if (s_->rng->UniformDouble() < drop_p[p]) {
        d.silent_before = p;
        break;
      }
    }
    SeededRandom noise(DeriveSeed(round_seed_, 0xD0000000ULL + d.index));
    auto up = privacy::PrepareUpdate(trained.deltas[k].data(), trained.deltas[k].size(), params,
                                     noise, sim_noise);
    if (!up.ok()) {
      if (up.status().code() != absl::StatusCode::kInvalidArgument) return up.status();
      Drop(d, "training", std::string(up.status().message()));
      continue;
    }
    norm_sum_ += up->norm;
    clipped_ += up->clipped;
    ++measured_;
    d.rng = std::make_unique<SeededRandom>(DeriveSeed(round_seed_, 0x5EC00000ULL + d.index));
    auto secagg =
        secagg::SecAggDevice::Create(d.task.secagg_id(), d.task.secagg(), &d.outbox, d.rng.get());
    absl::Status st = secagg.status();
    if (st.ok()) st = (*secagg)->SetInput(std::move(up->secagg_input));
    if (st.ok()) st = (*secagg)->Start();
    if (!st.ok()) {
      Drop(d, "advertise_keys", absl::StrCat("refused the task: ", st.message()));
      continue;
    }
    d.secagg = std::move(*secagg);
    if (d.silent_before == 0) {
      Drop(d, "advertise_keys", "dropout (simulated)");
      continue;
    }
    events_.push({now_ + absl::Seconds(d.train_seconds), d.index, 0});
  }
  return absl::OkStatus();
}

absl::Status CoordinatorDriver::ProcessInbox(RoundRecord* rec) {
  const bool over = RoundOver();
  while (!checkins_.empty() || !uploads_.empty()) {
    std::vector<CheckInReply> checkins = std::move(checkins_);
    checkins_.clear();
    std::vector<std::pair<int, v1::Task>> tasked;
    for (auto& r : checkins) {
      if (!r.status.ok()) continue;  // not in this round (simulated devices do not retry)
      if (r.reply.has_task()) {
        tasked.emplace_back(r.device, r.reply.task());
      } else if (r.reply.rejection().reason() == v1::REJECTION_BUDGET_EXHAUSTED) {
        budget_spent_ = r.reply.rejection().detail();
      }
    }
    if (!tasked.empty()) FEDLORA_RETURN_IF_ERROR(StartTasked(std::move(tasked), rec));
    std::vector<UploadReply> uploads = std::move(uploads_);
    uploads_.clear();
    for (auto& r : uploads) {
      Device& d = *devices_.at(r.device);
      const char* phase = secagg::PhaseName(static_cast<secagg::Phase>(r.phase));
      if (d.done) continue;
      if (!r.status.ok()) {
        const bool late =
            r.phase == 0 && s_->config.deadline > 0 && d.train_seconds > s_->config.deadline;
        Drop(d, late ? "training" : phase,
             late
                 ? absl::StrCat("missed the round deadline (coordinator: ", r.status.message(), ")")
                 : std::string(r.status.message()));
        continue;
      }
      d.detail = r.reply.detail();
      if (r.reply.status() == v1::SecAggDownload::STATUS_COMPLETED) {
        d.done = d.included = true;
      } else if (r.reply.status() != v1::SecAggDownload::STATUS_NEXT) {
        // Told the round ended for everyone (an abort) or dropped alone.
        if (over) {
          d.done = true;
        } else {
          Drop(d, phase, r.reply.detail());
        }
      } else {
        const int next = r.phase + 1;
        const char* next_name = secagg::PhaseName(static_cast<secagg::Phase>(next));
        absl::Status st = d.secagg->HandleMessage(r.reply.message());
        if (!st.ok()) {
          Drop(d, next_name, absl::StrCat("refused the server's reply: ", st.message()));
        } else if (d.secagg->phase() == secagg::Phase::kAborted) {
          Drop(d, next_name,
               absl::StrCat("secure aggregation stopped: ", d.secagg->abort_reason()));
        } else if (d.silent_before == next) {
          Drop(d, next_name, "dropout (simulated)");
        } else if (next >= secagg::kNumProtocolPhases) {
          Drop(d, "secagg", "no phase after unmasking");
        } else {
          const double seconds = kPhaseSeconds / s_->devices[d.index].speed;
          events_.push({now_ + absl::Seconds(seconds), d.index, next});
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> CoordinatorDriver::RunRound(int round, RoundRecord* rec, std::string* stop) {
  const auto wall0 = std::chrono::steady_clock::now();
  const SimConfig& c = s_->config;
  if (manager_->finished()) {
    *stop =
        absl::StrCat("stopped before round ", round, ": the coordinator has finished",
                     budget_spent_.empty() ? "" : ": ", budget_spent_, " (privacy.epsilon_budget)");
    return false;
  }
  round_ = manager_->Current().round;
  round_seed_ = DeriveSeed(c.seed, 0x10000ULL + static_cast<uint64_t>(round));
  devices_.clear();
  drops_.clear();
  budget_spent_.clear();
  train_wall_ = loss_sum_ = norm_sum_ = 0;
  clipped_ = measured_ = 0;
  // Every device checks in once, spread over the round's opening by its speed.
  double slowest = 0;
  for (const auto& d : s_->devices) slowest = std::max(slowest, 1 / d.speed);
  for (size_t i = 0; i < s_->devices.size(); ++i) {
    const double share = (1 / s_->devices[i].speed) / slowest;
    events_.push({now_ + kCheckInSpread * share, static_cast<int>(i), -1});
  }
  const absl::Time limit = now_ + kRoundLimit;
  while (true) {
    FEDLORA_RETURN_IF_ERROR(ProcessInbox(rec));
    if (RoundOver()) break;
    if (now_ > limit) {
      return absl::InternalError(
          absl::StrCat("coordinator round ", round_, " did not end within a virtual week (phase ",
                       manager_->Current().phase, "; hint: its deadlines; see ", log_path_, ")"));
    }
    absl::Time next = now_ + kMaxStep;
    if (!events_.empty()) next = std::min(next, events_.top().at);
    if (next > now_) {
      now_ = next;
      manager_->Tick(now_);
      continue;
    }
    const Event e = events_.top();
    events_.pop();
    Execute(e);
  }
  events_ = {};  // devices that had not spoken yet missed the round
  if (devices_.empty() && !budget_spent_.empty()) {
    *stop = absl::StrCat("stopped before round ", round, ": ", budget_spent_,
                         " (privacy.epsilon_budget)");
    return false;
  }
  FEDLORA_RETURN_IF_ERROR(FinishRound(rec));
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  rec->privacy_seconds = std::max(0.0, wall - train_wall_);
  return true;
}

absl::Status CoordinatorDriver::FinishRound(RoundRecord* rec) {
  FEDLORA_ASSIGN_OR_RETURN(auto rounds, store_->ListRounds());
  bool found = false;
  for (const auto& r : rounds) {
    if (r.round != round_) continue;
    found = true;
    rec->sampled = r.selected;
    rec->aborted = r.state != "committed";
    rec->abort_reason = r.abort_reason;
    rec->survivors = rec->aborted ? 0 : r.summed;
  }
  if (!found) {  // aborted before anything was written (e.g. too few sampled, uncharged)
    rec->sampled = static_cast<int>(devices_.size());
    rec->aborted = true;
    const std::string prefix = absl::StrCat("round ", round_, " aborted: ");
    rec->abort_reason = "aborted by the coordinator before it was charged";
    for (const auto& line : log_) {
      if (absl::StartsWith(line, prefix)) rec->abort_reason = line.substr(prefix.size());
    }
  }
  log_.clear();
  for (auto& [index, d] : devices_) {
    // A committed sum without this device: it was dropped.
    if (!rec->aborted && !d->included) {
      Drop(*d, "secagg", d->detail.empty() ? "not in the sum" : d->detail);
    }
  }
  rec->dropped = drops_;
  rec->train_loss = devices_.empty() ? 0 : loss_sum_ / devices_.size();
  rec->mean_update_norm = measured_ ? norm_sum_ / measured_ : 0;
  rec->clipped_fraction = measured_ ? double(clipped_) / measured_ : 0;
  if (!rec->aborted) {
    FEDLORA_ASSIGN_OR_RETURN(coordinator::AdapterVersion latest, store_->LatestAdapter());
    FEDLORA_ASSIGN_OR_RETURN(std::string bytes, store_->ReadBlob(latest.sha256));
    FEDLORA_ASSIGN_OR_RETURN(AdapterBlob blob, DecodeAdapterBlob(bytes));
    s_->global = std::move(blob.values);
  }
  return absl::OkStatus();
}

}  // namespace fedlora::sim
