// One round on a device: download the global adapter, train on the user's own text, privatize
// the delta (privacy::PrepareUpdate with a secure generator), and run the secure-aggregation
// client over gRPC until the round completes or the device is dropped. Only the masked,
// noised, clipped delta leaves the device, inside secure aggregation; loss, example count and
// seconds stay on the device (ParticipationResult, for its own log). Before anything of the
// round is sent, the round's unamplified charge is written to the device's own ledger
// (device_ledger.h); a task that would take the device past its budget is declined before
// training.
#ifndef FEDLORA_DEVICE_PARTICIPATION_H_
#define FEDLORA_DEVICE_PARTICIPATION_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fedlora/common/random.h"
#include "fedlora/device/coordinator_client.h"
#include "fedlora/device/runtime.h"
#include "fedlora/device/task_privacy.h"
#include "fedlora/device/trainer.h"

namespace fedlora::device {

struct DeviceData {
  Runtime* runtime = nullptr;       // base model + tokenizer (no adapters attached)
  std::string base_model_sha256;    // io::ModelSha256 of the model directory
  std::vector<std::string> texts;   // the user's text (never sent)
  std::string state_dir;            // adapter cache, the device's privacy ledger
};

struct ParticipationResult {
  uint64_t round = 0;
  bool completed = false;   // the device's input is in a committed sum
  std::string detail;       // why not, when not completed
  absl::Status refused;     // the coordinator's error status when it refused a call
  uint64_t new_version = 0;
  // Local log only: none of these leaves the device.
  int64_t steps = 0;
  double mean_loss = 0;
  double train_seconds = 0;
  int64_t windows = 0;  // training windows of the user's text at the task's seq_len
  double update_norm = 0;
  bool clipped = false;
  // The coordinator's claim: the run's epsilon once this round is charged, amplified by
  // sampling (it holds against observers of released adapters, not against the coordinator).
  double epsilon_if_released = 0;
  double delta = 0;
  // The device's own ledger (against the coordinator, no amplification), at policy.delta.
  bool budget_refused = false;  // declined before training: it would exceed the budget
  bool charged = false;         // this round's charge is in the ledger
  double device_epsilon = 0;    // spent after this round (before it, when declined)
};

// The secure-aggregation client over gRPC for one task, with `input` (entries < 2^bits, the
// session's dim) already privatized. `hook` (tests and benches only) sees each upload before
// it is sent and may alter it; returning false makes the device go silent from that phase on.
// Identical retries of a call are idempotent on the coordinator. Fills completed, detail and
// new_version of `result`; errors only for an invalid session or input.
absl::Status RunSecAggClient(CoordinatorClient& client, const v1::Task& task,
                             std::vector<uint32_t> input, absl::Duration phase_timeout,
                             RandomSource& rng, ParticipationResult* result,
                             const std::function<bool(int phase, v1::SecAggUpload*)>& hook = {});

// Privatizes `delta` with the task's parameters and runs the secure-aggregation client until
// the round completes or drops this device (torch-free: also used by benches and tests with
// synthetic deltas). Fills round/completed/detail/new_version/update_norm/clipped of `result`.
// FAILED_PRECONDITION when the task is refused by `policy` (see Participate). `hook` as in
// RunSecAggClient (simulated dropouts).
absl::Status SubmitUpdate(CoordinatorClient& client, const v1::Task& task,
                          const std::vector<float>& delta, const DevicePolicy& policy,
                          RandomSource& rng, ParticipationResult* result,
                          const std::function<bool(int phase, v1::SecAggUpload*)>& hook = {});

// Checks the task (CheckTask), then its unamplified charge against the device's ledger in
// data.state_dir: a task that would take the device past policy.epsilon_budget is declined
// before anything is downloaded or trained (budget_refused, with the reason in detail; not an
// error). After training, the charge is appended to the ledger (fsync) before the first
// secure-aggregation message is sent: a round that then fails or aborts stays charged (an
// over-charge, which is safe).
// Errors: FAILED_PRECONDITION when the task is refused (CheckTask, another base model),
// DATA_LOSS for a corrupt download or a damaged ledger, the ledger's write errors (nothing is
// sent then), the client's transport errors. A round the server aborts or drops this device
// from is not an error: completed = false with the reason.
absl::StatusOr<ParticipationResult> Participate(CoordinatorClient& client, DeviceData& data,
                                                const v1::Task& task, const DevicePolicy& policy,
                                                RandomSource& rng);

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_PARTICIPATION_H_
