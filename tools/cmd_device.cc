// fedlora device enroll|run: one phone's side of federated training, over gRPC.
#include <cstdio>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli_common.h"
#include "device_flags.h"
#include "fedlora/common/random.h"
#include "fedlora/device/device_conditions.h"
#include "fedlora/device/device_loop.h"
#include "fedlora/device/task_privacy.h"
#include "fedlora/device/text_store.h"
#include "fedlora/io/model_identity.h"
#include "fedlora/model/threads.h"
#include "text_input.h"

namespace fedlora::cli {
namespace {

struct DeviceOpts : DeviceConnection {
  std::string model, token;
  std::vector<std::string> data;
  int rounds = 1, threads = 0, max_failures = 8;
  double max_seconds = 3600, min_noise = 0.3;
  double epsilon_budget = device::kDefaultDeviceEpsilonBudget, delta = privacy::kMaxDefaultDelta;
  // Device conditions (docs/device.md, "Device policy"): flags override what the OS shows.
  bool on_battery = false, charging = false, metered = false, busy = false, from_store = false;
  int battery = -1, min_battery = 20;
};

// The conditions now: /sys/class/power_supply where there is a battery, then the flags.
device::DeviceConditions Conditions(const DeviceOpts& o) {
  device::DeviceConditions c;
  if (auto sys = device::ReadPowerSupply()) c = *sys;
  if (o.charging) c.charging = true;
  if (o.on_battery) c.charging = false;
  if (o.battery >= 0) c.battery_percent = o.battery;
  c.unmetered = !o.metered;
  c.idle = !o.busy;
  return c;
}

// --data, or the texts of the local store (--from-store), as of now.
absl::StatusOr<std::vector<std::string>> UserText(const DeviceOpts& o) {
  if (!o.from_store) {
    if (o.data.empty()) {
      return absl::InvalidArgumentError(
          "no user text (hint: --data FILE, or --from-store after `fedlora device observe`)");
    }
    return ReadTextLines(o.data);
  }
  auto store = device::TextStore::Open(device::TextStoreOptions::ForState(o.state),
                                       std::time(nullptr));
  if (!store.ok()) return store.status();
  auto entries = store->ReadAll(std::time(nullptr));
  if (!entries.ok()) return entries.status();
  std::vector<std::string> lines;
  for (auto& e : *entries) lines.push_back(std::move(e.text));
  if (lines.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the local text store in ", o.state,
        "/text is empty (hint: `fedlora device observe --state ", o.state, " --text ...`)"));
  }
  return lines;
}

}  // namespace

void RegisterCommand_device(CLI::App& app) {
  auto* parent = GetOrAddSubcommand(app, "device", "a device (phone): enrol, run rounds, install releases");
  parent->require_subcommand(1);
  auto o = std::make_shared<DeviceOpts>();

  auto* enroll = parent->add_subcommand("enroll", "generate a device key and enrol it with a token");
  enroll->footer(
      "Example:\n  fedlora device enroll --coordinator localhost:50051 --ca coord/tls/ca.pem \\\n"
      "      --state phone1 --token $(sed -n 1p coord/enroll-tokens.txt)");
  AddConnectionFlags(enroll, o.get());
  enroll->add_option("--token", o->token, "single-use enrolment token")->required();
  enroll->callback([o] {
    auto channel = DeviceChannel(*o);
    if (!channel.ok()) return (void)Fail(channel.status());
    auto enrolled = device::EnrollDevice(*channel, o->token, o->state, absl::Seconds(30));
    if (!enrolled.ok()) return (void)Fail(enrolled.status());
    const device::DeviceIdentity& id = *enrolled;
    if (o->json) return PrintJson({{"device_id", id.device_id}, {"coordinator_id", id.coordinator_id}});
    std::printf("enrolled as %s with %s; key in %s/device.key\n", id.device_id.c_str(),
                id.coordinator_id.c_str(), o->state.c_str());
  });

  auto* run = parent->add_subcommand(
      "run", "check in, train on the user's text, send only a masked noised update");
  run->footer(
      "Example:\n  fedlora device run --coordinator localhost:50051 --ca coord/tls/ca.pem \\\n"
      "      --state phone1 --model M --data my-messages.txt --rounds 3\n"
      "  fedlora device run ... --state phone1 --model M --from-store --rounds 3");
  AddConnectionFlags(run, o.get());
  run->add_option("--model", o->model, "base model directory")->required();
  auto* data_opt = run->add_option("--data", o->data,
                               "the user's text: file(s) or directory, one message per line");
  auto* from_store = run->add_flag(
      "--from-store", o->from_store,
      "train on the encrypted local text store (<state>/text, `fedlora device observe`)");
  data_opt->excludes(from_store);
  from_store->excludes(data_opt);
  run->add_option("--rounds", o->rounds, "stop after this many completed rounds (0 = no limit)")
      ->capture_default_str()->check(AtLeast(0));
  run->add_option("--max-seconds", o->max_seconds, "stop after this long")
      ->capture_default_str()->check(GreaterThan(0));
  run->add_option("--min-noise-multiplier", o->min_noise,
                  "refuse tasks whose composed noise multiplier (values and clipped count) is "
                  "below this")
      ->capture_default_str();
  run->add_option("--epsilon-budget", o->epsilon_budget,
                  "this device's own epsilon against the coordinator (no amplification by "
                  "sampling): refuse any task that would exceed it")
      ->capture_default_str();
  run->add_option("--delta", o->delta, "the delta of this device's own epsilon")
      ->capture_default_str();
  run->add_option("--max-failures", o->max_failures,
                  "give up after this many transient errors in a row (backoff grows with each)")
      ->capture_default_str()->check(GreaterThan(0));
  run->add_flag("--charging", o->charging, "the device is charging (else: what the OS shows)");
  run->add_flag("--on-battery", o->on_battery, "the device is not charging (else: what the OS shows)")
      ->excludes("--charging");
  run->add_flag("--metered", o->metered, "the network is metered: do not train or upload");
  run->add_flag("--busy", o->busy, "the user is using the device: do not train");
  run->add_option("--battery", o->battery, "battery level in percent (else: what the OS shows)")
      ->check(CLI::Range(0, 100));
  run->add_option("--min-battery", o->min_battery, "train only above this battery level")
      ->capture_default_str()->check(CLI::Range(0, 100));
  AddThreadsOption(run, &o->threads);
  run->callback([o] {
    device::DevicePolicy policy;
    policy.min_noise_multiplier = o->min_noise;
    policy.epsilon_budget = o->epsilon_budget;
    policy.delta = o->delta;
    if (auto s = device::ValidatePolicy(policy); !s.ok()) return (void)Fail(s);
    device::ConditionRules rules;
    rules.min_battery_percent = o->min_battery;
    // Checked first: a device that may not train loads nothing and contacts no one.
    if (const std::string no = device::ConditionRefusal(rules, Conditions(*o)); !no.empty()) {
      if (o->json) {
        return PrintJson({{"completed", 0}, {"rounds", nlohmann::json::array()},
                          {"stopped_because", "device conditions: " + no}, {"bytes_sent", 0},
                          {"bytes_received", 0}});
      }
      return LogLine(false, absl::StrCat("not training or uploading now: ", no));
    }
    model::ConfigureThreads({o->threads, 1});
    auto identity = device::LoadIdentity(o->state);
    if (!identity.ok()) return (void)Fail(identity.status());
    auto lines = UserText(*o);
    if (!lines.ok()) return (void)Fail(lines.status());
    auto sha = io::ModelSha256(o->model);
    if (!sha.ok()) return (void)Fail(sha.status());
    auto rt = device::LoadRuntime(o->model);
    if (!rt.ok()) return (void)Fail(rt.status());
    auto channel = DeviceChannel(*o);
    if (!channel.ok()) return (void)Fail(channel.status());
    device::CoordinatorClient client(*channel, &identity->key, identity->device_id);
    client.set_channel_options(DeviceChannelOptions(*o));  // aggregators a task names
    device::DeviceData data{&*rt, *sha, std::move(*lines), o->state};
    device::LoopOptions lo;
    lo.rounds = o->rounds;
    lo.max_time = absl::Seconds(o->max_seconds);
    lo.policy = policy;
    lo.max_transient_failures = o->max_failures;
    lo.rules = rules;
    lo.conditions = [o] { return Conditions(*o); };
    const bool json = o->json;
    lo.log = [json](const std::string& l) { LogLine(json, l); };
    SecureRandom rng;
    LogLine(json, absl::StrCat("device ", identity->device_id, ": ", data.texts.size(),
                           " lines of local text (they never leave this device)"));
    auto result = device::RunDeviceLoop(client, data, lo, rng);
    if (!result.ok()) return (void)Fail(result.status());
    nlohmann::json rounds = nlohmann::json::array();
    for (const auto& r : result->rounds) {
      // loss, steps, seconds and windows are this device's own log: none of them was sent.
      rounds.push_back({{"round", r.round},
                        {"completed", r.completed},
                        {"detail", r.detail},
                        {"loss", r.mean_loss},
                        {"steps", r.steps},
                        {"seconds", r.train_seconds},
                        {"windows", r.windows},
                        {"new_version", r.new_version},
                        {"device_epsilon", r.device_epsilon},
                        {"coordinator_claimed_epsilon", r.epsilon_if_released}});
    }
    nlohmann::json j = {{"device_id", identity->device_id},
                        {"completed", result->completed},
                        {"rounds", rounds},
                        {"stopped_because", result->stopped_because},
                        {"epsilon_budget", o->epsilon_budget},
                        {"delta", o->delta},
                        {"bytes_sent", client.bytes_sent()},
                        {"bytes_received", client.bytes_received()}};
    if (json) return PrintJson(j);
    LogLine(false, absl::StrCat("done: ", result->completed, " rounds completed (",
                            result->stopped_because, "); sent ", client.bytes_sent(), " bytes"));
  });
}

}  // namespace fedlora::cli
