// A device's life against a coordinator: its identity under --state (key, device id) and the
// check-in loop (retry windows honoured with jitter, exponential backoff with full jitter on
// transient errors, permanent errors and rejections told apart). The device's own privacy
// ledger is <state>/privacy-ledger.jsonl (device_ledger.h, charged by Participate).
#ifndef FEDLORA_DEVICE_DEVICE_LOOP_H_
#define FEDLORA_DEVICE_DEVICE_LOOP_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/common/ed25519.h"
#include "fedlora/device/device_conditions.h"
#include "fedlora/device/participation.h"

namespace fedlora::device {

struct DeviceIdentity {
  std::string device_id;
  std::string coordinator_id;
  Ed25519Key key;
};

// <state>/device.key (PKCS#8 PEM, 0600) and <state>/device.json. Refuses to overwrite an
// enrolled state folder (ALREADY_EXISTS: "already enrolled as ...").
absl::Status SaveIdentity(const std::string& state_dir, const DeviceIdentity& identity);
// NOT_FOUND with the hint to run `fedlora device enroll` first.
absl::StatusOr<DeviceIdentity> LoadIdentity(const std::string& state_dir);

// Generates a device key, enrols it with a single-use `token` and saves the identity under
// `state_dir` (SaveIdentity). An enrolled folder is refused (ALREADY_EXISTS) before anyone is
// contacted, so the token stays unused; the coordinator's refusals come back as they are
// (PERMISSION_DENIED for an unknown or used token).
absl::StatusOr<DeviceIdentity> EnrollDevice(const std::shared_ptr<grpc::Channel>& channel,
                                            const std::string& token,
                                            const std::string& state_dir,
                                            absl::Duration timeout);

struct LoopOptions {
  int rounds = 1;                          // stop after this many completed rounds (0 = no limit)
  absl::Duration max_time = absl::Hours(1);
  absl::Duration checkin_timeout = absl::Seconds(60);
  // Transient errors in a row are retried (exponential backoff, full jitter, cap 30 s) until
  // there were max_transient_failures of them AND they span at least min_retry_time, then
  // the loop fails with UNAVAILABLE: a coordinator restart of a few minutes is ridden out
  // however lucky the jitter, and a coordinator that is gone for good is given up on.
  int max_transient_failures = 8;
  absl::Duration min_retry_time = absl::Minutes(3);
  DevicePolicy policy;
  // Asked before every check-in; when the rules refuse, the loop stops without contacting
  // the coordinator and says why (stopped_because "device conditions: ..."). Unset: always.
  std::function<DeviceConditions()> conditions;
  ConditionRules rules;
  std::function<void(const std::string&)> log;
};

struct LoopResult {
  std::vector<ParticipationResult> rounds;
  int completed = 0;
  std::string stopped_because;
};

// Runs until `rounds` rounds completed, training is over (the coordinator says the budget is
// spent), the device's own budget would be exceeded by a task (stopped_because says "this
// device's privacy budget: ..."), or max_time. Each check-in carries one eligibility bit: the
// device's training windows (at the last task's seq_len, else 64) >= the last task's
// min_examples (else 1); a task whose recipe the device no longer meets is declined.
// Errors: INVALID_ARGUMENT for a bad policy (ValidatePolicy), permanent ones
// (UNAUTHENTICATED, PERMISSION_DENIED, a refused task or a base the coordinator does not
// serve: FAILED_PRECONDITION, a damaged ledger: DATA_LOSS) and UNAVAILABLE after transient
// failures in a row past both max_transient_failures and min_retry_time.
absl::StatusOr<LoopResult> RunDeviceLoop(CoordinatorClient& client, DeviceData& data,
                                         const LoopOptions& options, RandomSource& rng);

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_DEVICE_LOOP_H_
