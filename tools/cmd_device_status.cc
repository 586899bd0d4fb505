// fedlora device status: the device's own privacy ledger (device/device_ledger.h): the epsilon
// it has spent against the coordinator, its budget, the rounds charged, and, labelled apart,
// the coordinator's amplified claim.
#include <cmath>
#include <cstdio>
#include <limits>

#include "absl/strings/str_format.h"
#include "cli_common.h"
#include "fedlora/device/device_ledger.h"
#include "fedlora/device/task_privacy.h"

namespace fedlora::cli {
namespace {

constexpr char kAgainst[] =
    "against the coordinator and anyone who sees your individual masked input's unmasking "
    "\xe2\x80\x94 i.e. without amplification by sampling";
constexpr char kClaim[] =
    "epsilon against observers of released adapters (the coordinator's claim)";

struct StatusOpts {
  std::string state;
  double epsilon_budget = device::kDefaultDeviceEpsilonBudget, delta = privacy::kMaxDefaultDelta;
  bool json = false;
};

// JSON has no infinity: an infinite epsilon prints as the string "inf".
nlohmann::json Number(double x) {
  return std::isinf(x) ? nlohmann::json("inf") : nlohmann::json(x);
}

}  // namespace

void RegisterCommand_device_status(CLI::App& app) {
  auto* parent =
      GetOrAddSubcommand(app, "device", "a device (phone): enrol, run rounds, install releases");
  auto o = std::make_shared<StatusOpts>();
  auto* cmd = parent->add_subcommand(
      "status", "this device's own epsilon against the coordinator: spent, budget, rounds");
  cmd->footer(
      "Example:\n  fedlora device status --state phone1\n"
      "Reads <state>/privacy-ledger.jsonl, which `fedlora device run` charges before each "
      "round's masked input leaves the device. Pass the --epsilon-budget and --delta the "
      "device runs with.");
  cmd->add_option("--state", o->state, "the device's state folder")->required();
  cmd->add_option("--epsilon-budget", o->epsilon_budget, "the budget `device run` enforces")
      ->capture_default_str();
  cmd->add_option("--delta", o->delta, "the delta of the device's epsilon")->capture_default_str();
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o] {
    device::DevicePolicy policy;
    policy.epsilon_budget = o->epsilon_budget;
    policy.delta = o->delta;
    if (auto s = device::ValidatePolicy(policy); !s.ok()) return (void)Fail(s);
    auto ledger = device::DeviceLedger::Open(o->state);
    if (!ledger.ok()) return (void)Fail(ledger.status());
    auto spent = ledger->Epsilon(o->delta);
    if (!spent.ok()) return (void)Fail(spent.status());
    nlohmann::json rounds = nlohmann::json::array();
    for (const auto& e : ledger->entries()) {
      rounds.push_back({{"round", e.round},
                        {"unix", e.unix_seconds},
                        {"noise_multiplier", e.noise_multiplier},
                        {"coordinator_claimed_epsilon", e.coordinator_epsilon}});
    }
    const device::DeviceLedgerEntry* last =
        ledger->entries().empty() ? nullptr : &ledger->entries().back();
    nlohmann::json j = {{"ledger", ledger->path()},
                        {"rounds_charged", ledger->rounds_charged()},
                        {"epsilon_spent", Number(*spent)},
                        {"epsilon_budget", Number(o->epsilon_budget)},
                        {"delta", o->delta},
                        {"holds_against", kAgainst},
                        {"budget_left", Number(std::max(0.0, o->epsilon_budget - *spent))},
                        {"recovered_bytes", ledger->recovered_bytes()},
                        {"rounds", rounds}};
    if (last != nullptr) {
      j["coordinator_claim"] = {{"label", kClaim},
                                {"epsilon", last->coordinator_epsilon},
                                {"delta", last->coordinator_delta},
                                {"round", last->round}};
    }
    if (o->json) return PrintJson(j);
    std::printf("%s: %d rounds charged\n", ledger->path().c_str(), ledger->rounds_charged());
    std::printf("epsilon %s of budget %g at delta %g, %s\n",
                absl::StrFormat("%.4g", *spent).c_str(), o->epsilon_budget, o->delta, kAgainst);
    if (ledger->recovered_bytes() > 0) {
      std::printf(
          "(a last entry cut short by a crash, %lld bytes, is not counted: its round sent "
          "nothing)\n",
          static_cast<long long>(ledger->recovered_bytes()));
    }
    if (last != nullptr) {
      std::printf("%s: %.4g at delta %g after round %llu\n", kClaim, last->coordinator_epsilon,
                  last->coordinator_delta, static_cast<unsigned long long>(last->round));
    }
  });
}

}  // namespace fedlora::cli
