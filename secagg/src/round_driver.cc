#include "fedlora/secagg/round_driver.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>

#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/secagg/device.h"
#include "fedlora/secagg/server.h"
#include "in_process_transport.h"
#include "parallel.h"

namespace fedlora::secagg {
namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

absl::Status CheckInputs(const proto::SecAggSessionConfig& c,
                         const std::vector<std::vector<uint32_t>>& inputs) {
  if (inputs.size() != c.num_devices()) {
    return absl::InvalidArgumentError(absl::StrCat("secagg: ", inputs.size(), " input vectors for ",
                                                   c.num_devices(), " devices"));
  }
  const uint64_t limit = uint64_t{1} << c.bits();
  for (size_t u = 0; u < inputs.size(); ++u) {
    if (inputs[u].size() != c.dim()) {
      return absl::InvalidArgumentError(absl::StrCat("secagg: input of device ", u, " has ",
                                                     inputs[u].size(), " entries, expected ",
                                                     c.dim()));
    }
    for (size_t i = 0; i < inputs[u].size(); ++i) {
      if (inputs[u][i] >= limit) {
        return absl::InvalidArgumentError(absl::StrCat("secagg: input of device ", u, "[", i,
                                                       "] = ", inputs[u][i], " >= 2^", c.bits()));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

DropoutPlan DropoutPlan::Fraction(Phase phase, double p) {
  DropoutPlan plan;
  plan.probability[static_cast<int>(phase)] = p;
  return plan;
}

DropoutPlan DropoutPlan::ExactFraction(Phase phase, double p, uint32_t num_devices,
                                       RandomSource& rng) {
  std::vector<uint32_t> ids(num_devices);
  for (uint32_t i = 0; i < num_devices; ++i) ids[i] = i;
  for (uint32_t i = num_devices; i > 1; --i) std::swap(ids[i - 1], ids[rng.Uniform(i)]);
  ids.resize(static_cast<size_t>(std::llround(p * num_devices)));
  std::sort(ids.begin(), ids.end());
  DropoutPlan plan;
  plan.silent_in_phase[static_cast<int>(phase)] = std::move(ids);
  return plan;
}

std::vector<uint32_t> PlainSum(const std::vector<std::vector<uint32_t>>& inputs,
                               const std::vector<uint32_t>& devices, int bits) {
  if (devices.empty()) return {};
  std::vector<uint32_t> sum(inputs[devices[0]].size(), 0);
  for (uint32_t d : devices) {
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += inputs[d][i];
  }
  if (bits < 32) {
    for (auto& v : sum) v &= (uint32_t{1} << bits) - 1;
  }
  return sum;
}

absl::StatusOr<RoundResult> RunInProcessRound(const RoundConfig& config,
                                              const std::vector<std::vector<uint32_t>>& inputs,
                                              const DropoutPlan& plan, RandomSource& rng,
                                              const TransportHooks* hooks) {
  const auto wall_start = Clock::now();
  RoundResult result;
  FEDLORA_ASSIGN_OR_RETURN(result.config, MakeSessionConfig(config.session, rng));
  FEDLORA_RETURN_IF_ERROR(CheckInputs(result.config, inputs));
  const uint32_t n = result.config.num_devices();
  const int threads = config.threads > 0
                          ? config.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));

  ServerOutbox downlink(n, hooks);
  FEDLORA_ASSIGN_OR_RETURN(auto server, SecAggServer::Create(result.config, &downlink, threads));
  std::vector<DeviceOutbox> uplink(n);
  std::vector<std::unique_ptr<SeededRandom>> device_rngs(n);
  std::vector<std::unique_ptr<SecAggDevice>> devices(n);
  for (uint32_t u = 0; u < n; ++u) {
    device_rngs[u] = std::make_unique<SeededRandom>(NextSecret(rng).data());
    FEDLORA_ASSIGN_OR_RETURN(
        devices[u], SecAggDevice::Create(u, result.config, &uplink[u], device_rngs[u].get()));
  }
  auto& report = result.report;
  report.devices.resize(n);
  std::vector<bool> silent(n, false);

  for (int p = 0; p < kNumProtocolPhases; ++p) {
    const Phase phase = static_cast<Phase>(p);
    for (uint32_t u : plan.silent_in_phase[p]) {
      if (u < n && !silent[u]) silent[u] = report.devices[u].injected_dropout = true;
    }
    if (plan.probability[p] > 0) {
      for (uint32_t u = 0; u < n; ++u) {
        if (!silent[u] && rng.UniformDouble() < plan.probability[p]) {
          silent[u] = report.devices[u].injected_dropout = true;
        }
      }
    }
    // Devices compute in parallel; each touches only its own queues and Rng.
    ParallelFor(n, threads, [&](size_t u, int) {
      auto& inbox = downlink.queues[u];
      if (silent[u]) {
        inbox.clear();
        return;
      }
      const auto start = Clock::now();
      if (phase == Phase::kAdvertiseKeys) {
        (void)devices[u]->SetInput(inputs[u]);  // validated above
        (void)devices[u]->Start();
      }
      for (const auto& msg : inbox) (void)devices[u]->HandleMessage(msg);
      std::vector<proto::SecAggServerMessage>().swap(inbox);
      report.devices[u].compute_seconds += Seconds(start);
    });
    // The server handles uploads in device order, then closes the phase.
    const auto server_start = Clock::now();
    for (uint32_t u = 0; u < n; ++u) {
      for (auto& msg : uplink[u].queue) {
        if (hooks != nullptr && hooks->to_server) {
          for (const auto& m : hooks->to_server(phase, std::move(msg))) {
            (void)server->HandleMessage(m);
          }
        } else {
          (void)server->HandleMessage(msg);
        }
      }
      std::vector<proto::SecAggDeviceMessage>().swap(uplink[u].queue);
    }
    (void)server->ProceedToNextPhase();
    report.server_phase_seconds[p] = Seconds(server_start);
    report.server_compute_seconds += report.server_phase_seconds[p];
    if (server->phase() == Phase::kAborted) break;
  }
  // Let devices see a final abort (if any) so their state and bytes are complete.
  for (uint32_t u = 0; u < n; ++u) {
    if (!silent[u]) {
      for (const auto& msg : downlink.queues[u]) (void)devices[u]->HandleMessage(msg);
    }
    downlink.queues[u].clear();
  }

  result.aborted = server->phase() == Phase::kAborted;
  result.abort_status = server->abort_status();
  if (!result.aborted) {
    FEDLORA_ASSIGN_OR_RETURN(result.sum, server->TakeSum());
    result.included_devices = server->IncludedDevices();
  }
  for (uint32_t u = 0; u < n; ++u) {
    DeviceReport& d = report.devices[u];
    const DeviceOutcome o = server->Outcome(u);
    d.id = u;
    d.included_in_sum = o.included_in_sum;
    d.dropped_in = o.dropped_in;
    d.reason = o.reason;
    d.detail = o.detail;
    if (devices[u]->phase() == Phase::kAborted && !devices[u]->abort_reason().empty() &&
        d.detail.find(devices[u]->abort_reason()) == std::string::npos) {
      d.detail += (d.detail.empty() ? "" : "; ") + devices[u]->abort_reason();
    }
    d.bytes_sent = uplink[u].bytes_sent;
    d.bytes_received = downlink.bytes_received[u];
  }
  report.drop_counts = server->drop_counts();
  report.rejected_unknown_device = server->rejected_unknown_device();
  report.wall_seconds = Seconds(wall_start);
  return result;
}

}  // namespace fedlora::secagg
