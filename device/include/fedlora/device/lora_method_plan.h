// The LoRA method of a task on the device (Task.lora_method; fedlora/common/lora_method.h):
// where local training starts, which values it trains, and which of them are sent.
//   lora   start = the global adapter; A and B train; the whole delta is sent.
//   ffa    start = the global adapter; A stays frozen (its delta is exactly 0); only B's delta
//          is sent.
//   fedsa  start = the global A with this device's personal B (from its state folder; the
//          global B the first time); both train; only A's delta is sent. The trained B is
//          written back to the state folder (fsync'd, atomic) and never leaves the device.
#ifndef FEDLORA_DEVICE_LORA_METHOD_PLAN_H_
#define FEDLORA_DEVICE_LORA_METHOD_PLAN_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/common/adapter_blob.h"
#include "fedlora/common/lora_method.h"
#include "fedlora/proto/fedlora_v1.pb.h"

namespace fedlora::device {

// FAILED_PRECONDITION for a method this device does not know (a newer coordinator).
absl::StatusOr<LoraMethod> TaskLoraMethod(const v1::Task& task);

// <state>/fedsa/personal_b.blob: the personal B of FedSA-LoRA, an adapter blob (adapter_blob.h)
// whose values are the B matrices only, in flat-layout order.
std::string PersonalBPath(const std::string& state_dir);

struct MethodPlan {
  LoraMethod method = LoraMethod::kLora;
  std::vector<float> start;      // the full adapter local training starts from
  std::vector<size_t> shared;    // positions sent (the task's privacy.dim of them)
  std::vector<size_t> personal;  // fedsa: positions of B, kept on the device
  bool freeze_a = false;         // ffa
};

// The plan for `global` (the task's adapter) under `method`. `expected_layout` is the slot
// layout of the adapter this device builds for the blob's LoRA config (it must equal the
// blob's, else FAILED_PRECONDITION). fedsa reads the personal B from `state_dir`: absent ->
// the global's B; made for another adapter (LoRA config, base model or size) ->
// FAILED_PRECONDITION naming the file; unreadable -> DATA_LOSS.
absl::StatusOr<MethodPlan> PlanMethod(
    LoraMethod method, const AdapterBlob& global,
    const std::vector<std::pair<uint64_t, uint64_t>>& expected_layout,
    const std::string& state_dir);

// After training (`delta` = trained - plan.start, full length): writes the personal B
// (fedsa) and returns the values to send (the delta at plan.shared).
absl::StatusOr<std::vector<float>> FinishMethod(const MethodPlan& plan, const AdapterBlob& global,
                                                const std::vector<float>& delta,
                                                const std::string& state_dir);

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_LORA_METHOD_PLAN_H_
