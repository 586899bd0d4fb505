// What a device checks in a task's privacy parameters before it trains, and what the task
// costs the device itself.
//
// The coordinator's epsilon (Task.epsilon_observers_if_released) is amplified by sampling: it holds
// for observers of released adapters, not against the coordinator, who flips the sampling coins and
// knows who took part. Against the coordinator (and anyone who sees the unmasking of a device's
// input), a round costs the device its unamplified charge: q = 1, the value release and, with
// adaptive clipping, the clipped-count release composed, with the noise the device itself adds and
// the survivor minimum secure aggregation enforces. The device computes that charge from parameters
// it recomputes itself, never from derived values the coordinator sent.
#ifndef FEDLORA_DEVICE_TASK_PRIVACY_H_
#define FEDLORA_DEVICE_TASK_PRIVACY_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fedlora/privacy/defaults.h"
#include "fedlora/privacy/prepare_update.h"
#include "fedlora/privacy/round_accounting.h"
#include "fedlora/proto/fedlora_v1.pb.h"

namespace fedlora::device {

// The epsilon a device allows itself against the coordinator by default, at kMaxDefaultDelta
// (docs/device.md, "The device's own epsilon", says why 8).
inline constexpr double kDefaultDeviceEpsilonBudget = 8;

struct DevicePolicy {
  // The device refuses tasks whose composed noise multiplier (the value and the clipped-count
  // releases of the round together, ComposedNoiseMultiplier) is below this: a coordinator
  // cannot talk it into sending a barely-noised update.
  double min_noise_multiplier = 0.3;
  // The device's own budget against the coordinator: it refuses any task whose unamplified
  // charge would take its ledger (device_ledger.h) past epsilon_budget at delta. Infinity
  // means no limit (research only).
  double epsilon_budget = kDefaultDeviceEpsilonBudget;
  double delta = privacy::kMaxDefaultDelta;
  absl::Duration phase_timeout = absl::Minutes(10);  // each secure-aggregation call
};

// INVALID_ARGUMENT (with a hint) when min_noise_multiplier < 0, epsilon_budget <= 0 or NaN, or
// delta is outside (0, 1).
absl::Status ValidatePolicy(const DevicePolicy& policy);

// The noise multiplier of the round's releases composed: the value's z_v and, with adaptive
// clipping, the clipped count's 2 s (noise stddev s on a query of sensitivity 1/2), as
// privacy::AdaptiveClipNoiseParams splits a total z: (z_v^-2 + (2 s)^-2)^(-1/2). Zero when a
// part has no noise.
double ComposedNoiseMultiplier(const privacy::RoundPrivacyParams& params);

// The task checks, each a FAILED_PRECONDITION "task refused: ..." with a hint:
//  * distributed DP only;
//  * the value codec's parameters, recomputed from the sent configuration (ChooseDdgParams),
//    give each device a discrete Gaussian with sigma^2 >= 1/4 in the scaled domain;
//  * with adaptive clipping, the count's scale and per-device sigma^2 equal what
//    ChooseCountDdgParams derives from the sent stddev, cohort and bits (a coordinator cannot
//    send a near-zero count noise), sigma^2 >= 1/4, and the count's min_clients and
//    expected_clients equal the value's;
//  * ComposedNoiseMultiplier >= policy.min_noise_multiplier;
//  * min_clients in [1, expected_clients], and the session unmasks no sum of fewer than
//    max(2, min_clients) devices (secagg min_sum_devices); the session's vector holds the dim;
//  * a sharded task (shard, shard_min_survivors): the noise is calibrated for at most the
//    shard's minimum (the coordinator sees each shard's sum), the shard's session enforces
//    exactly that minimum, and the minimum does not exceed the session's devices.
absl::Status CheckTask(const v1::Task& task, const privacy::RoundPrivacyParams& params,
                       const DevicePolicy& policy);

// The round as the device accounts it against the coordinator: Poisson sampling with q = 1
// (add/remove one user's contribution, no amplification), the value's DDG mechanism and, with
// adaptive clipping, the count's, each with n_min = min(min_clients, the session's
// min_sum_devices) and the parameters recomputed as CheckTask does. Call CheckTask first;
// errors like it (FAILED_PRECONDITION) for parameters it would refuse.
absl::StatusOr<privacy::RoundMechanism> UnamplifiedRoundMechanism(
    const v1::Task& task, const privacy::RoundPrivacyParams& params);

// privacy::ComputeRoundRdp of UnamplifiedRoundMechanism at `orders`.
absl::StatusOr<std::vector<double>> UnamplifiedRoundRdp(const v1::Task& task,
                                                        const privacy::RoundPrivacyParams& params,
                                                        const std::vector<double>& orders);

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_TASK_PRIVACY_H_
