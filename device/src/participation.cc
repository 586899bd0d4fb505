#include "fedlora/device/participation.h"

#include <torch/types.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/adapters/slot_layout.h"
#include "fedlora/common/adapter_blob.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/device/device_ledger.h"
#include "fedlora/device/lora_method_plan.h"
#include "fedlora/device/personal_adapter.h"
#include "fedlora/privacy/params_wire.h"
#include "fedlora/secagg/device.h"

namespace fedlora::device {
namespace {

using LastMessage = secagg::LastMessageOutbox;

absl::StatusOr<std::string> FetchAdapter(CoordinatorClient& client, const DeviceData& data,
                                         const v1::Task& task) {
  const std::string& h = task.adapter_sha256();  // names a cache file: 64 hex, nothing else
  if (h.size() != 64 || h.find_first_not_of("0123456789abcdef") != std::string::npos)
    return absl::InvalidArgumentError("adapter_sha256 is not 64 hex (hint: bad coordinator)");
  const std::string dir = data.state_dir + "/adapters";
  FEDLORA_RETURN_IF_ERROR(MakeDirs(dir));
  const std::string path = absl::StrCat(dir, "/", task.adapter_sha256(), ".blob");
  if (auto cached = ReadFileToString(path); cached.ok()) return *cached;
  absl::Status last;
  for (int attempt = 0; attempt < 3; ++attempt) {  // a broken stream resumes from the offset
    auto blob = client.Download(task.adapter_version(), task.adapter_sha256(), path + ".partial",
                                absl::Minutes(5));
    if (blob.ok()) {
      FEDLORA_RETURN_IF_ERROR(WriteFileAtomic(path, *blob));
      return *blob;
    }
    last = blob.status();
    if (!IsTransient(last)) break;
  }
  return last;
}

}  // namespace

absl::Status SubmitUpdate(CoordinatorClient& client, const v1::Task& task,
                          const std::vector<float>& delta, const DevicePolicy& policy,
                          RandomSource& rng, ParticipationResult* result,
                          const std::function<bool(int phase, v1::SecAggUpload*)>& hook) {
  result->round = task.round();
  FEDLORA_ASSIGN_OR_RETURN(privacy::RoundPrivacyParams params,
                           privacy::ParamsFromProto(task.privacy()));
  FEDLORA_RETURN_IF_ERROR(CheckTask(task, params, policy));
  FEDLORA_ASSIGN_OR_RETURN(privacy::PreparedUpdate update,
                           privacy::PrepareUpdate(delta.data(), delta.size(), params, rng));
  result->update_norm = update.norm;
  result->clipped = update.clipped;

  return RunSecAggClient(client, task, std::move(update.secagg_input), policy.phase_timeout, rng,
                         result, hook);
}

absl::Status RunSecAggClient(CoordinatorClient& client, const v1::Task& task,
                             std::vector<uint32_t> input, absl::Duration phase_timeout,
                             RandomSource& rng, ParticipationResult* result,
                             const std::function<bool(int phase, v1::SecAggUpload*)>& hook) {
  result->round = task.round();
  LastMessage outbox;
  FEDLORA_ASSIGN_OR_RETURN(auto secagg,
                           secagg::SecAggDevice::Create(task.secagg_id(), task.secagg(), &outbox, &rng));
  FEDLORA_RETURN_IF_ERROR(secagg->SetInput(std::move(input)));
  FEDLORA_RETURN_IF_ERROR(secagg->Start());

  for (int i = 0; i < secagg::kNumProtocolPhases; ++i) {
    const auto phase = static_cast<secagg::Phase>(i);
    v1::SecAggUpload upload;
    upload.set_round(task.round());
    if (!outbox.Take(upload.mutable_message())) {
      result->detail = absl::StrCat("secure aggregation stopped before ", secagg::PhaseName(phase),
                                   ": ", secagg->abort_reason());
      return absl::OkStatus();
    }
    if (hook && !hook(i, &upload)) {
      result->detail = absl::StrCat("went silent before ", secagg::PhaseName(phase));
      return absl::OkStatus();
    }
    absl::StatusOr<v1::SecAggDownload> reply;
    for (int attempt = 0; attempt < 3; ++attempt) {  // an identical retry is idempotent
      reply = client.SecAgg(phase, upload, phase_timeout, task.aggregator_address());
      if (reply.ok() || !IsTransient(reply.status())) break;
    }
    if (!reply.ok()) {
      result->refused = reply.status();
      result->detail = absl::StrCat(secagg::PhaseName(phase), ": ", reply.status().message());
      return absl::OkStatus();
    }
    if (reply->status() == v1::SecAggDownload::STATUS_COMPLETED) {
      result->completed = true;
      result->new_version = reply->new_adapter_version();
      return absl::OkStatus();
    }
    if (reply->status() != v1::SecAggDownload::STATUS_NEXT) {
      result->detail = reply->detail();
      return absl::OkStatus();
    }
    absl::Status s = secagg->HandleMessage(reply->message());
    if (!s.ok()) {
      result->detail = absl::StrCat("refused the server's ", secagg::PhaseName(phase),
                                   " reply: ", s.message());
      return absl::OkStatus();
    }
  }
  result->detail = "secure aggregation ended without a result";
  return absl::OkStatus();
}

absl::StatusOr<ParticipationResult> Participate(CoordinatorClient& client, DeviceData& data,
                                                const v1::Task& task, const DevicePolicy& policy,
                                                RandomSource& rng) {
  ParticipationResult result;
  result.round = task.round();
  result.epsilon_if_released = task.epsilon_observers_if_released();
  result.delta = task.delta();
  FEDLORA_RETURN_IF_ERROR(ValidatePolicy(policy));
  FEDLORA_ASSIGN_OR_RETURN(privacy::RoundPrivacyParams params,
                           privacy::ParamsFromProto(task.privacy()));
  FEDLORA_RETURN_IF_ERROR(CheckTask(task, params, policy));
  // A method this device cannot honour is refused before anything is charged or downloaded.
  FEDLORA_ASSIGN_OR_RETURN(LoraMethod method, TaskLoraMethod(task));
  // The device's own budget, before anything is downloaded or trained.
  if (data.state_dir.empty()) {
    return absl::InvalidArgumentError(
        "participation: no state folder (hint: the device's privacy ledger lives in it; set "
        "DeviceData::state_dir)");
  }
  FEDLORA_ASSIGN_OR_RETURN(DeviceLedger ledger, DeviceLedger::Open(data.state_dir));
  FEDLORA_ASSIGN_OR_RETURN(std::vector<double> charge,
                           UnamplifiedRoundRdp(task, params, ledger.orders()));
  FEDLORA_ASSIGN_OR_RETURN(BudgetCheck budget,
                           CheckBudget(ledger, charge, policy.epsilon_budget, policy.delta));
  result.device_epsilon = budget.spent;
  if (!budget.allowed) {
    result.budget_refused = true;
    result.detail = budget.reason;
    return result;
  }
  FEDLORA_ASSIGN_OR_RETURN(std::string bytes, FetchAdapter(client, data, task));
  FEDLORA_ASSIGN_OR_RETURN(AdapterBlob blob, DecodeAdapterBlob(bytes));
  if (!blob.base_model_sha256.empty() && blob.base_model_sha256 != data.base_model_sha256) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the global adapter was made for base model ", blob.base_model_sha256,
        ", this device runs ", data.base_model_sha256));
  }
  FEDLORA_ASSIGN_OR_RETURN(adapters::LoraConfig lora,
                           adapters::LoraConfig::FromPeftJson(blob.lora, "global adapter"));
  FEDLORA_ASSIGN_OR_RETURN(adapters::LoraAdapter shape,
                           adapters::LoraAdapter::Create(data.runtime->model->config(), lora, 0));
  FEDLORA_ASSIGN_OR_RETURN(MethodPlan plan,
                           PlanMethod(method, blob, adapters::SlotLayout(shape), data.state_dir));
  if (blob.values.size() != static_cast<size_t>(shape.NumParameters()) ||
      plan.shared.size() != params.dim) {
    return absl::FailedPreconditionError(
        absl::StrCat("the adapter has ", blob.values.size(), " values (", plan.shared.size(),
                     " shared under LoRA method ", LoraMethodName(method), "), the round's dim is ",
                     params.dim));
  }
  TrainOptions options;
  options.optimizer.lr = task.recipe().lr();
  options.batch_size = std::max<int64_t>(1, task.recipe().batch_size());
  options.max_steps = std::max<int64_t>(1, task.recipe().steps());
  options.seed = task.task_seed();
  options.shards = 0;  // one per BLAS thread: a device trains alone
  // The global adapter alone over the base: a personal adapter never shapes the upload.
  FEDLORA_ASSIGN_OR_RETURN(
      GlobalDelta trained,
      TrainGlobalDelta(*data.runtime->model, *data.runtime->tokenizer, lora, plan.start, data.texts,
                       options, static_cast<int64_t>(task.recipe().seq_len()), plan.freeze_a));
  // fedsa: the trained B is kept (state folder); only the shared values are sent.
  FEDLORA_ASSIGN_OR_RETURN(std::vector<float> upload,
                           FinishMethod(plan, blob, trained.delta, data.state_dir));
  // Local log only: loss, steps, seconds and windows never leave the device.
  result.steps = trained.stats.steps;
  result.mean_loss = trained.stats.mean_loss;
  result.train_seconds = trained.stats.seconds;
  result.windows = trained.windows;
  // Charged before the first secure-aggregation message (and so the masked input) is sent;
  // nothing is sent if the charge cannot be made durable.
  DeviceLedgerEntry entry;
  entry.round = task.round();
  entry.unix_seconds = absl::ToUnixSeconds(absl::Now());
  entry.noise_multiplier = ComposedNoiseMultiplier(params);
  entry.rdp = std::move(charge);
  entry.coordinator_epsilon = task.epsilon_observers_if_released();
  entry.coordinator_delta = task.delta();
  FEDLORA_RETURN_IF_ERROR(ledger.Append(entry));
#ifdef FEDLORA_FAULT_INJECTION
  // Test hook (process tests of the ledger's crash safety, like the coordinator's
  // FEDLORA_COORDINATOR_CRASH_AT): die the hard way once the charge is durable. Compiled only
  // into test builds (-DFEDLORA_FAULT_INJECTION=ON, the default; OFF for release builds).
  if (std::getenv("FEDLORA_DEVICE_CRASH_AFTER_CHARGE") != nullptr) ::raise(SIGKILL);
#endif
  result.charged = true;
  result.device_epsilon = budget.after;
  FEDLORA_RETURN_IF_ERROR(SubmitUpdate(client, task, upload, policy, rng, &result));
  return result;
}

}  // namespace fedlora::device
