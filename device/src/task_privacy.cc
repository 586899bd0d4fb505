#include "fedlora/device/task_privacy.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/privacy/ddg_accounting.h"
#include "fedlora/privacy/ddg_codec.h"
#include "fedlora/privacy/ddg_count.h"
#include "fedlora/privacy/participation_accountant.h"

namespace fedlora::device {
namespace {

// Below this per-device variance (scaled domain) the sum-of-discrete-Gaussians bound the
// accountant uses does not apply (Kairouz et al. 2021 need sigma >= 1/2).
constexpr double kMinLocalSigma2 = 0.25;

absl::Status Refuse(const std::string& what, const std::string& hint) {
  return absl::FailedPreconditionError(absl::StrCat("task refused: ", what, " (hint: ", hint, ")"));
}

int MinClients(const privacy::DdgConfig& c) {
  return c.min_clients > 0 ? c.min_clients : c.expected_clients;
}

// Equal up to rounding in the coordinator's arithmetic (the same formula on another machine).
bool Same(double a, double b) {
  return std::fabs(a - b) <= 1e-9 * std::max(std::fabs(a), std::fabs(b));
}

// The value codec's parameters, recomputed from the sent configuration.
absl::StatusOr<privacy::DdgParams> ValueParams(const privacy::RoundPrivacyParams& p) {
  auto v = privacy::ChooseDdgParams(p.value);
  if (!v.ok()) {
    return Refuse(absl::StrCat("its value noise configuration is invalid: ", v.status().message()),
                  "the coordinator sent parameters no device can use; report it to its operator");
  }
  if (!(v->local_sigma2_scaled >= kMinLocalSigma2)) {
    return Refuse(absl::StrFormat("each device's discrete Gaussian on the values would have "
                                  "sigma^2 %g < 1/4 in the scaled domain",
                                  v->local_sigma2_scaled),
                  "the noise is too coarse for the DDG guarantee: more noise or more bits");
  }
  return *v;
}

// The count's parameters, recomputed from the sent stddev, cohort and bits; the sent scale and
// variance must be what they give.
absl::StatusOr<privacy::CountDdgParams> CountParams(const privacy::RoundPrivacyParams& p) {
  const privacy::CountDdgParams& sent = *p.count;
  if (sent.min_clients != MinClients(p.value) ||
      sent.expected_clients != p.value.expected_clients) {
    return Refuse(absl::StrFormat("the clipped count is calibrated for %d of %d devices, the "
                                  "values for %d of %d",
                                  sent.min_clients, sent.expected_clients, MinClients(p.value),
                                  p.value.expected_clients),
                  "both releases of a round share its cohort");
  }
  auto c = privacy::ChooseCountDdgParams(sent.count_stddev, sent.expected_clients, sent.min_clients,
                                         sent.bits);
  if (!c.ok()) {
    return Refuse(absl::StrCat("its clipped-count noise is invalid: ", c.status().message()),
                  "adaptive clipping needs noise on the count");
  }
  if (c->scale != sent.scale || !Same(c->local_sigma2, sent.local_sigma2)) {
    return Refuse(absl::StrFormat("the clipped count's scale %d and per-device sigma^2 %g are "
                                  "not what its stddev %g gives (scale %d, sigma^2 %g)",
                                  sent.scale, sent.local_sigma2, sent.count_stddev, c->scale,
                                  c->local_sigma2),
                  "the device recomputes every derived noise parameter itself");
  }
  if (!(c->local_sigma2 >= kMinLocalSigma2)) {
    return Refuse(absl::StrFormat("each device's discrete Gaussian on the clipped count would "
                                  "have sigma^2 %g < 1/4",
                                  c->local_sigma2),
                  "raise the count's noise");
  }
  return *c;
}

// The task's shard (sharded secure aggregation): the coordinator sees the shard's sum on its
// own, so the noise must be calibrated for no more survivors than the shard must keep, and the
// shard's session must enforce exactly that minimum. A task naming no minimum (a coordinator
// from before sharding) is judged by the session's min_sum_devices alone.
absl::Status CheckShard(const v1::Task& task, int calibrated_for) {
  const uint32_t shard_min = task.shard_min_survivors();
  if (shard_min == 0 && task.shard() == 0) return absl::OkStatus();
  if (shard_min == 0) {
    return Refuse(absl::StrCat("it names shard ", task.shard(), " without its survivor minimum"),
                  "a sharded task must say how many of its shard's devices must survive");
  }
  if (static_cast<uint32_t>(calibrated_for) > shard_min) {
    return Refuse(absl::StrFormat("the noise is calibrated for %d survivors but shard %d must keep "
                                  "only %d, and the coordinator sees each shard's sum on its own",
                                  calibrated_for, task.shard(), shard_min),
                  "each device's noise must be calibrated for its own shard's minimum");
  }
  const uint32_t min_sum = task.secagg().min_sum_devices();
  if (min_sum != shard_min) {
    return Refuse(absl::StrFormat("shard %d's minimum is %d survivors but its session unmasks "
                                  "sums of %d",
                                  task.shard(), shard_min, min_sum),
                  "the shard's session must enforce the shard's minimum");
  }
  if (shard_min > task.secagg().num_devices()) {
    return Refuse(absl::StrFormat("shard %d's minimum of %d survivors exceeds its %d devices",
                                  task.shard(), shard_min, task.secagg().num_devices()),
                  "the shard's session could never be unmasked");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidatePolicy(const DevicePolicy& policy) {
  if (!(policy.min_noise_multiplier >= 0) || std::isinf(policy.min_noise_multiplier)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "device policy: min_noise_multiplier must be >= 0 and finite, got %g (hint: 0.3 is "
        "the default)",
        policy.min_noise_multiplier));
  }
  if (!(policy.epsilon_budget > 0)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "device policy: the epsilon budget must be > 0, got %g (hint: the default is %g at "
        "delta %g; inf disables the limit, for research only)",
        policy.epsilon_budget, kDefaultDeviceEpsilonBudget, privacy::kMaxDefaultDelta));
  }
  if (!(policy.delta > 0 && policy.delta < 1)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("device policy: delta must be in (0, 1), got %g (hint: the default is %g)",
                        policy.delta, privacy::kMaxDefaultDelta));
  }
  return absl::OkStatus();
}

double ComposedNoiseMultiplier(const privacy::RoundPrivacyParams& p) {
  const double zv = p.value.noise_multiplier;
  if (!(zv > 0)) return 0;
  double inv2 = 1 / (zv * zv);
  if (p.count) {
    const double zc = 2 * p.count->count_stddev;
    if (!(zc > 0)) return 0;
    inv2 += 1 / (zc * zc);
  }
  return 1 / std::sqrt(inv2);
}

absl::Status CheckTask(const v1::Task& task, const privacy::RoundPrivacyParams& p,
                       const DevicePolicy& policy) {
  if (p.mode != privacy::DpMode::kDistributed) {
    return Refuse("it asks for an update without distributed DP",
                  "this device only sends noised updates inside secure aggregation");
  }
  const int m = MinClients(p.value);
  if (m < 1 || m > p.value.expected_clients) {
    return Refuse(absl::StrFormat("the noise is calibrated for %d of %d devices", m,
                                  p.value.expected_clients),
                  "min_clients must be in [1, expected_clients]");
  }
  FEDLORA_RETURN_IF_ERROR(ValueParams(p).status());
  if (p.count) FEDLORA_RETURN_IF_ERROR(CountParams(p).status());
  const double z = ComposedNoiseMultiplier(p);
  // A relative 1e-9 forgives the coordinator's split and this recomposition their rounding.
  if (!(z >= policy.min_noise_multiplier * (1 - 1e-9))) {
    return Refuse(
        absl::StrFormat("the round's noise multiplier %g (value %g%s) is below this device's "
                        "minimum %g",
                        z, p.value.noise_multiplier,
                        p.count ? absl::StrFormat(", clipped count %g", 2 * p.count->count_stddev)
                                : std::string(),
                        policy.min_noise_multiplier),
        "the coordinator must add more noise; --min-noise-multiplier sets the minimum");
  }
  const uint32_t min_sum = task.secagg().min_sum_devices();
  FEDLORA_RETURN_IF_ERROR(CheckShard(task, m));
  if (min_sum < static_cast<uint32_t>(std::max(2, m))) {
    return Refuse(absl::StrCat("the session would unmask sums of ", min_sum,
                               " devices but the noise is calibrated for ", m),
                  "secure aggregation must not unmask fewer inputs than the noise needs");
  }
  if (task.secagg().dim() < p.dim) {
    return Refuse("the secure-aggregation vector is shorter than the adapter",
                  "the coordinator's session and round parameters disagree");
  }
  return absl::OkStatus();
}

absl::StatusOr<privacy::RoundMechanism> UnamplifiedRoundMechanism(
    const v1::Task& task, const privacy::RoundPrivacyParams& p) {
  if (p.mode != privacy::DpMode::kDistributed) {
    return Refuse("it asks for an update without distributed DP", "see CheckTask");
  }
  const int n_min = std::min<int64_t>(MinClients(p.value), task.secagg().min_sum_devices());
  if (n_min < 1) return Refuse("no survivor minimum", "see CheckTask");
  privacy::RoundMechanism m;
  m.sampling = privacy::Sampling::kPoisson;  // add/remove one user's contribution
  m.q = 1;                                   // the coordinator knows who took part
  FEDLORA_ASSIGN_OR_RETURN(privacy::DdgParams value, ValueParams(p));
  privacy::DdgSumMechanism v = privacy::DdgValueMechanism(value);
  v.n_min = std::min(v.n_min, n_min);
  m.ddg.push_back(v);
  if (p.count) {
    FEDLORA_ASSIGN_OR_RETURN(privacy::CountDdgParams count, CountParams(p));
    privacy::DdgSumMechanism c = privacy::CountMechanism(count);
    c.n_min = std::min(c.n_min, n_min);
    m.ddg.push_back(c);
  }
  return m;
}

absl::StatusOr<std::vector<double>> UnamplifiedRoundRdp(const v1::Task& task,
                                                        const privacy::RoundPrivacyParams& p,
                                                        const std::vector<double>& orders) {
  FEDLORA_ASSIGN_OR_RETURN(privacy::RoundMechanism m, UnamplifiedRoundMechanism(task, p));
  // The one definition of a round's cost against the coordinator (the coordinator's status and
  // the simulator use it too), here on the mechanism the device rebuilt from what it checked.
  return privacy::RdpAgainstCoordinator(m, orders);
}

}  // namespace fedlora::device
