// fedlora_enroll and fedlora_participate: the runtime's calls that reach the coordinator.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "capi_lifetime.h"
#include "capi_runtime.h"
#include "capi_status.h"
#include "fedlora/common/random.h"
#include "fedlora/device/coordinator_client.h"
#include "fedlora/device/device_conditions.h"
#include "fedlora/device/device_ledger.h"
#include "fedlora/device/device_loop.h"
#include "fedlora/device/release_update.h"
#include "fedlora/device/runtime.h"

using fedlora::capi::FromStatus;
using fedlora::capi::Guarded;
using fedlora::capi::SetError;

namespace {

// The coordinator's address and TLS settings as a channel.
fedlora::device::ChannelOptions ChannelOpts(const fedlora_coordinator& c) {
  fedlora::device::ChannelOptions o;
  o.address = c.address;
  o.insecure = c.insecure != 0;
  if (c.ca_pem_path != nullptr) o.ca_pem_path = c.ca_pem_path;
  if (c.server_name != nullptr) o.server_name = c.server_name;
  return o;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> Channel(const fedlora_coordinator& c) {
  if (c.address == nullptr || *c.address == '\0') {
    return absl::InvalidArgumentError("fedlora_coordinator.address is empty (hint: host:port)");
  }
  if (c.timeout_seconds <= 0) {
    return absl::InvalidArgumentError("fedlora_coordinator.timeout_seconds must be > 0");
  }
  return fedlora::device::MakeChannel(ChannelOpts(c));
}

// A state folder without an identity: the C API's hint rather than the CLI's.
absl::Status Unenrolled(const absl::Status& s, const std::string& state_dir) {
  if (s.code() != absl::StatusCode::kNotFound) return s;
  return absl::NotFoundError(
      absl::StrCat(state_dir,
                   " is not enrolled with a coordinator (hint: fedlora_enroll with a token from "
                   "the operator first)"));
}

// The conditions the app reported last (fedlora_set_conditions), else those `policy` started
// with.
fedlora::device::DeviceConditions LiveConditions(fedlora_runtime* rt) {
  std::lock_guard<std::mutex> lock(rt->conditions_mu);
  return rt->conditions;
}

int Participate(fedlora_runtime* rt, const fedlora_coordinator* coordinator_in,
                const fedlora_policy* policy_in, fedlora_participation* out) {
  fedlora_coordinator coordinator;
  fedlora_policy policy;
  int code = FEDLORA_OK;
  if (!fedlora::capi::ReadStruct(coordinator_in, fedlora_coordinator_init, "fedlora_coordinator",
                                 &coordinator, &code) ||
      !fedlora::capi::ReadStruct(policy_in, fedlora_policy_init, "fedlora_policy", &policy,
                                 &code)) {
    return code;
  }
  if (policy.rounds < 1 || policy.max_seconds <= 0) {
    return SetError(FEDLORA_INVALID_ARGUMENT,
                    "fedlora_policy: rounds must be >= 1 and max_seconds > 0");
  }
  fedlora_participation result;
  fedlora_participation_init(&result);
  const fedlora::device::ConditionRules rules = fedlora::capi::RulesOf(policy);
  const fedlora::device::DeviceConditions now = fedlora::capi::ConditionsOf(policy);
  auto current_release = [rt] {
    std::lock_guard<std::mutex> lock(rt->mu);
    return rt->release_version;
  };
  // Checked first: a device that may not train loads nothing and contacts no one.
  if (std::string no = fedlora::device::ConditionRefusal(rules, now); !no.empty()) {
    fedlora::capi::CopyUtf8("device conditions: " + no, result.stopped_because,
                            sizeof(result.stopped_because));
    result.release_version = current_release();
    fedlora::capi::WriteStruct(result, out);
    return SetError(FEDLORA_REFUSED_BY_POLICY, "not training or uploading now: " + no);
  }
  std::lock_guard<std::mutex> round(rt->round_mu);
  {
    std::lock_guard<std::mutex> lock(rt->conditions_mu);
    rt->conditions = now;  // fedlora_set_conditions updates it while the call runs
  }
  auto identity = fedlora::device::LoadIdentity(rt->state_dir);
  if (!identity.ok()) return FromStatus(Unenrolled(identity.status(), rt->state_dir));
  absl::StatusOr<std::vector<std::string>> texts;
  absl::StatusOr<std::string> sha;
  {
    // The runtime's lock only to copy what the round needs: suggestions go on meanwhile.
    std::lock_guard<std::mutex> lock(rt->mu);
    texts = rt->StoredTexts();
    if (texts.ok()) sha = rt->BaseSha256();
  }
  if (!texts.ok()) return FromStatus(texts.status());
  if (!sha.ok()) return FromStatus(sha.status());
  auto channel = Channel(coordinator);
  if (!channel.ok()) return FromStatus(channel.status());
  const absl::Duration timeout = absl::Seconds(coordinator.timeout_seconds);
  fedlora::device::CoordinatorClient client(*channel, &identity->key, identity->device_id);
  client.set_channel_options(ChannelOpts(coordinator));  // aggregators a task names
  fedlora::SecureRandom rng;
  absl::StatusOr<fedlora::device::LoopResult> loop;
  {
    // Rounds train the global adapter's delta on the base alone, on a model of their own (the
    // runtime's keeps its adapters and serves suggestions); it is freed after the rounds.
    auto bare = fedlora::device::LoadRuntime(rt->model_dir);
    if (!bare.ok()) return FromStatus(bare.status());
    fedlora::device::DeviceData data{&*bare, *sha, std::move(*texts), rt->state_dir};
    fedlora::device::LoopOptions lo;
    lo.rounds = policy.rounds;
    lo.max_time = absl::Seconds(policy.max_seconds);
    lo.checkin_timeout = timeout;
    lo.policy.min_noise_multiplier = policy.min_noise_multiplier;
    lo.policy.epsilon_budget = policy.epsilon_budget;
    lo.policy.delta = policy.delta;
    lo.rules = rules;
    lo.conditions = [rt] { return LiveConditions(rt); };  // before every check-in
    loop = fedlora::device::RunDeviceLoop(client, data, lo, rng);
  }
  auto finish = [&](int status) {
    result.bytes_sent = client.bytes_sent();
    result.bytes_received = client.bytes_received();
    result.release_version = current_release();
    fedlora::capi::WriteStruct(result, out);
    return status;
  };
  result.device_epsilon_budget = policy.epsilon_budget;
  if (auto ledger = fedlora::device::DeviceLedger::Open(rt->state_dir); ledger.ok()) {
    result.device_epsilon = ledger->Epsilon(policy.delta).value_or(0);
  }
  if (!loop.ok()) return finish(FromStatus(loop.status()));
  result.completed = loop->completed;
  for (const auto& r : loop->rounds) {
    result.last_round = std::max<uint64_t>(result.last_round, r.round);
    if (r.completed) {
      result.epsilon = r.epsilon_if_released;
      result.delta = r.delta;
    }
  }
  fedlora::capi::CopyUtf8(loop->stopped_because, result.stopped_because,
                          sizeof(result.stopped_because));
  if (!rt->has_trust) return finish(FEDLORA_OK);
  // The next phase, the release, only while the conditions still allow it.
  if (std::string no = fedlora::device::ConditionRefusal(rules, LiveConditions(rt)); !no.empty()) {
    fedlora::capi::CopyUtf8("device conditions: " + no, result.stopped_because,
                            sizeof(result.stopped_because));
    return finish(FEDLORA_OK);
  }
  // The release: installed only when the signature, base and files verify (UpdateRelease).
  fedlora::device::ReleaseUpdateOptions uo;
  uo.state_dir = rt->state_dir;
  uo.base_model_sha256 = *sha;
  uo.trust = &rt->trust;
  uo.segment = rt->segment;
  uo.timeout = timeout;
  auto update = fedlora::device::UpdateRelease(client, uo);
  if (!update.ok()) {
    return finish(SetError(static_cast<int>(update.status().code()),
                           absl::StrCat("rounds done (", result.completed,
                                        " completed); the release was not applied: ",
                                        update.status().message())));
  }
  fedlora::capi::CopyUtf8(update->action, result.release_action, sizeof(result.release_action));
  absl::Status switched;
  {
    std::lock_guard<std::mutex> lock(rt->mu);  // finish() takes it again: released first
    if (update->running_version != rt->release_version) {
      rt->DetachAll();
      switched = rt->LoadRelease();
      absl::Status a = rt->AttachAll();
      if (switched.ok()) switched = a;
    }
  }
  return finish(FromStatus(switched));
}

}  // namespace

extern "C" {

int fedlora_enroll(fedlora_runtime* rt, const fedlora_coordinator* coordinator_in,
                   const char* token) {
  return Guarded("fedlora_enroll", [&]() -> int {
    fedlora::capi::RuntimeHold hold(rt);
    if (hold.code() != FEDLORA_OK) return hold.code();
    if (token == nullptr || *token == '\0') {
      return SetError(FEDLORA_INVALID_ARGUMENT,
                      "the enrolment token is empty (hint: the operator's `coordinator init` "
                      "writes them)");
    }
    fedlora_coordinator coordinator;
    int code = FEDLORA_OK;
    if (!fedlora::capi::ReadStruct(coordinator_in, fedlora_coordinator_init,
                                   "fedlora_coordinator", &coordinator, &code)) {
      return code;
    }
    std::lock_guard<std::mutex> lock(rt->round_mu);  // the state folder's identity, not the model
    auto channel = Channel(coordinator);
    if (!channel.ok()) return FromStatus(channel.status());
    return FromStatus(fedlora::device::EnrollDevice(*channel, token, rt->state_dir,
                                                    absl::Seconds(coordinator.timeout_seconds))
                          .status());
  });
}

int fedlora_participate(fedlora_runtime* rt, const fedlora_coordinator* coordinator,
                        const fedlora_policy* policy, fedlora_participation* out) {
  return Guarded("fedlora_participate", [&]() -> int {
    fedlora::capi::RuntimeHold hold(rt);
    if (hold.code() != FEDLORA_OK) return hold.code();
    return Participate(rt, coordinator, policy, out);
  });
}

}  // extern "C"
