#include "fedlora/device/device_loop.h"

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/device/trainer.h"
#include "nlohmann/json.hpp"

namespace fedlora::device {
namespace {

void Sleep(absl::Duration d) {
  std::this_thread::sleep_for(std::chrono::milliseconds(absl::ToInt64Milliseconds(d)));
}

// Uniform in [lo, hi] (the coordinator's retry window: jitter spreads the population).
absl::Duration Jitter(absl::Duration lo, absl::Duration hi, RandomSource& rng) {
  if (hi <= lo) return lo;
  return lo + (hi - lo) * rng.UniformDouble();
}

// The device's training windows of its text at `seq_len` (MakeWindows), counted on the device.
int64_t CountWindows(const DeviceData& data, int64_t seq_len) {
  if (data.runtime == nullptr || data.runtime->tokenizer == nullptr) {
    return static_cast<int64_t>(data.texts.size());
  }
  return MakeWindows(*data.runtime->tokenizer, data.texts, seq_len).size();
}

}  // namespace

// ALREADY_EXISTS when `state_dir` holds an enrolled device.
absl::Status RefuseEnrolled(const std::string& state_dir) {
  if (!std::filesystem::exists(std::filesystem::path(state_dir) / "device.json")) {
    return absl::OkStatus();
  }
  auto existing = LoadIdentity(state_dir);
  return absl::AlreadyExistsError(absl::StrCat(
      state_dir, " is already enrolled",
      existing.ok() ? absl::StrCat(" as ", existing->device_id) : std::string(),
      " (hint: one state folder per device: use another, or delete it to enrol again)"));
}

absl::Status SaveIdentity(const std::string& state_dir, const DeviceIdentity& id) {
  namespace fs = std::filesystem;
  FEDLORA_RETURN_IF_ERROR(MakeDirs(state_dir));
  std::error_code ec;
  fs::permissions(state_dir, fs::perms::owner_all, ec);
  FEDLORA_RETURN_IF_ERROR(RefuseEnrolled(state_dir));
  FEDLORA_RETURN_IF_ERROR(id.key.SavePrivate(state_dir + "/device.key"));
  nlohmann::json j = {{"device_id", id.device_id}, {"coordinator_id", id.coordinator_id}};
  return WriteFileAtomic(state_dir + "/device.json", j.dump(2) + "\n");
}

absl::StatusOr<DeviceIdentity> LoadIdentity(const std::string& state_dir) {
  auto text = ReadFileToString(state_dir + "/device.json");
  if (!text.ok()) {
    return absl::NotFoundError(absl::StrCat(
        state_dir, " holds no enrolled device (hint: run `fedlora device enroll --state ",
        state_dir, " --token TOKEN --coordinator ADDR` first)"));
  }
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("device_id") ||
      !j["device_id"].is_string()) {
    return absl::DataLossError(absl::StrCat(state_dir, "/device.json is damaged"));
  }
  FEDLORA_ASSIGN_OR_RETURN(Ed25519Key key, Ed25519Key::LoadPrivate(state_dir + "/device.key"));
  return DeviceIdentity{j["device_id"].get<std::string>(),
                        j.value("coordinator_id", std::string()), std::move(key)};
}

absl::StatusOr<DeviceIdentity> EnrollDevice(const std::shared_ptr<grpc::Channel>& channel,
                                            const std::string& token,
                                            const std::string& state_dir,
                                            absl::Duration timeout) {
  FEDLORA_RETURN_IF_ERROR(RefuseEnrolled(state_dir));
  FEDLORA_ASSIGN_OR_RETURN(Ed25519Key key, Ed25519Key::Generate());
  v1::EnrollRequest req;
  req.set_token(token);
  req.set_public_key(key.PublicRaw());
  FEDLORA_ASSIGN_OR_RETURN(v1::EnrollResponse resp,
                           CoordinatorClient::Enroll(channel, req, timeout));
  DeviceIdentity id{resp.device_id(), resp.coordinator_id(), std::move(key)};
  FEDLORA_RETURN_IF_ERROR(SaveIdentity(state_dir, id));
  return id;
}

absl::StatusOr<LoopResult> RunDeviceLoop(CoordinatorClient& client, DeviceData& data,
                                         const LoopOptions& options, RandomSource& rng) {
  LoopResult result;
  auto log = [&](const std::string& line) {
    if (options.log) options.log(line);
  };
  const absl::Time end = absl::Now() + options.max_time;
  int transient = 0;  // transient failures in a row, since outage_start
  absl::Time outage_start;
  FEDLORA_RETURN_IF_ERROR(ValidatePolicy(options.policy));
  v1::CheckInRequest request;
  request.set_base_model_sha256(data.base_model_sha256);
  request.set_client_version("fedlora-device/1");
  // Eligibility is one bit the device decides: its training windows at the last task's
  // sequence length against that task's min_examples (before any task: 64 tokens and 1).
  // The count itself never leaves the device.
  int64_t seq_len = 64, min_examples = 1;
  int64_t windows = CountWindows(data, seq_len);
  request.set_eligible(windows >= min_examples);
  auto backoff = [&](const absl::Status& s) -> absl::Status {
    if (transient++ == 0) outage_start = absl::Now();
    const absl::Duration outage = absl::Now() - outage_start;
    if (transient > options.max_transient_failures && outage >= options.min_retry_time) {
      return absl::UnavailableError(absl::StrFormat(
          "coordinator unreachable for %.0f s (%d attempts): %s (hint: check the address and "
          "that the coordinator runs; devices retry for --max-failures attempts and at least "
          "%.0f s)",
          absl::ToDoubleSeconds(outage), transient - 1, s.message(),
          absl::ToDoubleSeconds(options.min_retry_time)));
    }
    const absl::Duration cap = std::min(absl::Seconds(30), absl::Milliseconds(250) * (1 << std::min(transient, 7)));
    const absl::Duration wait = Jitter(absl::ZeroDuration(), cap, rng);  // full jitter
    log(absl::StrFormat("transient error (%s); retrying in %.1f s", s.message(),
                        absl::ToDoubleSeconds(wait)));
    Sleep(wait);
    return absl::OkStatus();
  };
  while (absl::Now() < end) {
    if (options.rounds > 0 && result.completed >= options.rounds) {
      result.stopped_because = absl::StrCat(result.completed, " rounds completed");
      return result;
    }
    if (options.conditions) {
      const std::string no = ConditionRefusal(options.rules, options.conditions());
      if (!no.empty()) {
        result.stopped_because = absl::StrCat("device conditions: ", no);
        log(absl::StrCat("not training or uploading now: ", no));
        return result;
      }
    }
    auto reply = client.CheckIn(request, options.checkin_timeout);
    if (!reply.ok()) {
      if (!IsTransient(reply.status())) return reply.status();
      FEDLORA_RETURN_IF_ERROR(backoff(reply.status()));
      continue;
    }
    transient = 0;
    if (reply->has_rejection()) {
      const auto& r = reply->rejection();
      if (r.reason() == v1::REJECTION_BUDGET_EXHAUSTED) {
        result.stopped_because = r.detail();
        return result;
      }
      if (r.reason() == v1::REJECTION_BASE_MISMATCH) {
        return absl::FailedPreconditionError(r.detail());
      }
      const absl::Duration wait = Jitter(absl::Milliseconds(r.retry_min_ms()),
                                         absl::Milliseconds(r.retry_max_ms()), rng);
      log(absl::StrFormat("not this time (%s: %s); checking in again in %.1f s",
                          v1::RejectionReason_Name(r.reason()), r.detail(),
                          absl::ToDoubleSeconds(wait)));
      Sleep(std::min(wait, std::max(absl::ZeroDuration(), end - absl::Now())));
      continue;
    }
    const v1::Task& task = reply->task();
    if (task.recipe().seq_len() > 0 && task.recipe().seq_len() != seq_len) {
      seq_len = task.recipe().seq_len();
      windows = CountWindows(data, seq_len);
    }
    min_examples = std::max<int64_t>(1, task.recipe().min_examples());
    request.set_eligible(windows >= min_examples);
    if (!request.eligible()) {
      // Selected on an older recipe: decline (the coordinator sees a dropout) and say so at
      // the next check-in with the bit.
      log(absl::StrFormat("round %d: declined: %d training windows, the recipe needs %d",
                          task.round(), windows, min_examples));
      continue;
    }
    log(absl::StrFormat("round %d: task of %d steps on adapter version %d", task.round(),
                        task.recipe().steps(), task.adapter_version()));
    auto done = Participate(client, data, task, options.policy, rng);
    if (!done.ok()) {
      if (IsTransient(done.status())) {
        FEDLORA_RETURN_IF_ERROR(backoff(done.status()));
        continue;
      }
      return done.status();
    }
    if (done->budget_refused) {
      // The device's own budget is spent: it takes no more tasks, whoever selects it.
      result.stopped_because = done->detail;
      log(absl::StrFormat("round %d: declined before training: %s", done->round, done->detail));
      return result;
    }
    // Local log only: the loss, steps, seconds and windows are never sent.
    if (done->completed) {
      result.completed++;
      log(
          absl::StrFormat("round %d: completed (loss %.4f, %d steps, %.1f s training, %d "
                          "windows); adapter version %d; this device's epsilon against the "
                          "coordinator %.4g (delta %g); epsilon against observers of released "
                          "adapters (the coordinator's claim) %.4g",
                          done->round, done->mean_loss, done->steps, done->train_seconds,
                          done->windows, done->new_version, done->device_epsilon,
                          options.policy.delta, done->epsilon_if_released));
    } else {
      log(
          absl::StrFormat("round %d: not completed: %s (charged: this device's epsilon against "
                          "the coordinator %.4g)",
                          done->round, done->detail, done->device_epsilon));
    }
    result.rounds.push_back(*done);
  }
  result.stopped_because = "time limit reached";
  return result;
}

}  // namespace fedlora::device
