// One round on a device: download the global adapter, train on the user's own text, privatize
// the delta (privacy::PrepareUpdate with a secure generator), and run the secure-aggregation
// client over gRPC until the round completes or the device is dropped. Only the masked,
// noised, clipped delta leaves the device, inside secure aggregation; the report carries loss,
// example count and seconds.
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
#include "fedlora/device/trainer.h"

namespace fedlora::device {

struct DeviceData {
  Runtime* runtime = nullptr;       // base model + tokenizer (no adapters attached)
  std::string base_model_sha256;    // io::ModelSha256 of the model directory
  std::vector<std::string> texts;   // the user's text (never sent)
  std::string state_dir;            // adapter cache
};

struct DevicePolicy {
  // The device refuses tasks whose noise would be weaker than this (a coordinator cannot
  // talk it into sending a barely-noised update).
  double min_noise_multiplier = 0.3;
  absl::Duration phase_timeout = absl::Minutes(10);  // each secure-aggregation call
};

struct ParticipationResult {
  uint64_t round = 0;
  bool completed = false;   // the device's input is in a committed sum
  std::string detail;       // why not, when not completed
  absl::Status refused;     // the coordinator's error status when it refused a call
  uint64_t new_version = 0;
  int64_t steps = 0;
  double mean_loss = 0;
  double train_seconds = 0;
  double update_norm = 0;   // local log only
  bool clipped = false;     // local log only
  double epsilon_if_released = 0;  // the run's epsilon once this round is charged
  double delta = 0;
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

// Errors: FAILED_PRECONDITION when the task is refused (not distributed DP, noise below the
// policy, a session that would unmask fewer devices than the noise is calibrated for, another
// base model), DATA_LOSS for a corrupt download, the client's transport errors. A round the
// server aborts or drops this device from is not an error: completed = false with the reason.
absl::StatusOr<ParticipationResult> Participate(CoordinatorClient& client, DeviceData& data,
                                                const v1::Task& task, const DevicePolicy& policy,
                                                RandomSource& rng);

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_PARTICIPATION_H_
