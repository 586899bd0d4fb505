// bench_aggregator: one sharded round whose shards run in aggregator processes (issue 30)
// against the same round as one secure-aggregation session at the leader, in the same run. Each
// configuration gets a fresh PostgreSQL database (a server this bench starts, Debian's
// binaries, as in the tests), a leader (`fedlora coordinator run`) and, for the sharded one,
// `fedlora coordinator aggregator` processes, all over loopback TLS.
//
//   bench_aggregator [--devices 400] [--shard-size 100] [--aggregators 4] [--dim 10000]
//                    [--json]
//
// Devices are threads of this process (own key, own TLS connection); every one checks in
// (sampling rate 1), gets its task when the selection window closes, privatizes a zero delta
// (so the round passes the norm check and commits) and runs the four secure-aggregation calls,
// to the leader or to the aggregator its task names. Timed from the first task to the round's
// commit in the store: wall seconds, and the CPU seconds (/proc/PID/stat) of the leader and of
// each aggregator over that span, plus the machine's busy cores.
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fedlora/common/random.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/coordinator/state_folder.h"
#include "fedlora/device/participation.h"
#include "fedlora/privacy/params_wire.h"
#include "fedlora/privacy/prepare_update.h"
#include "nlohmann/json.hpp"
#include "CLI/CLI.hpp"
#include "bench_devices.h"
#include "proc_stats.h"
#include "testutil/postgres_server.h"
#include "testutil/process.h"

namespace fedlora {
namespace {

using bench::Now;

struct Args {
  int devices = 400;
  int shard_size = 100;
  int aggregators = 4;
  size_t dim = 10000;
  bool json = false;
};

// One round with `shard_size` (0 = one session) and `n_aggregators` aggregator processes.
absl::StatusOr<nlohmann::json> RunRound(testing::PostgresServer& pg, const Args& a, int shard_size,
                                        int n_aggregators) {
  const std::string dir = std::filesystem::temp_directory_path().string() + "/bench_aggregator_" +
                          std::to_string(n_aggregators);
  std::filesystem::remove_all(dir);
  coordinator::StateFolderSpec spec;
  spec.state_dir = dir;
  spec.store = pg.ConnInfo(pg.CreateDatabase());
  spec.tokens = a.devices;
  spec.config = {{"population", a.devices * 10},
                 {"goal", a.devices},
                 {"sampling_rate", 1.0},
                 {"max_cohort", a.devices},
                 {"rounds", 1},
                 {"selection_window_s", 20 + a.devices / 20},
                 {"train_deadline_s", 120},
                 {"phase_deadline_s", 120},
                 {"max_shard_size", shard_size},
                 {"noise_multiplier", 1.0},
                 {"clip", 1.0},
                 {"delta", 1e-6}};
  spec.initial.lora = {{"peft_type", "LORA"}, {"r", 8}, {"target_modules", {"q_proj"}}};
  spec.initial.values.assign(a.dim, 0.0f);
  FEDLORA_ASSIGN_OR_RETURN(coordinator::StateFolderInfo info, coordinator::CreateStateFolder(spec));
  const std::string logs = dir + "/logs";
  std::filesystem::create_directories(logs);
  ChildProcess leader = testing::StartFedlora(
      {"coordinator", "run", "--state", dir, "--listen", "127.0.0.1:0", "--metrics", ""},
      logs + "/leader");
  const int leader_port = bench::PortOfLine(leader.WaitForLine("listening on", 60));
  if (leader_port == 0) return absl::InternalError("leader: " + leader.Err());
  std::vector<ChildProcess> aggs;
  for (int k = 0; k < n_aggregators; ++k) {
    aggs.push_back(testing::StartFedlora(
        {"coordinator", "aggregator", "--state", dir, "--listen", "127.0.0.1:0", "--metrics", ""},
        logs + "/aggregator" + std::to_string(k)));
    if (aggs.back().WaitForLine("registered as", 60).empty()) {
      return absl::InternalError("aggregator: " + aggs.back().Err());
    }
  }
  device::ChannelOptions co;
  co.address = "127.0.0.1:" + std::to_string(leader_port);
  co.ca_pem_path = info.ca_pem;
  co.server_name = "localhost";
  std::vector<bench::BenchDevice> devs(a.devices);
  std::vector<device::CoordinatorClient*> clients(a.devices);
  for (int i = 0; i < a.devices; ++i) {
    FEDLORA_ASSIGN_OR_RETURN(auto channel, device::MakeChannel(co));
    FEDLORA_ASSIGN_OR_RETURN(devs[i], bench::EnrollBenchDevice(channel, info.tokens[i]));
    clients[i] = devs[i].client.get();
    clients[i]->set_channel_options(co);
  }
  std::vector<std::optional<v1::Task>> tasks = bench::CheckInAll(clients, absl::Seconds(300));
  // Inputs outside the timed span: privatized zero deltas (the round commits).
  std::vector<std::vector<uint32_t>> inputs(a.devices);
  int tasked = 0;
  std::vector<std::string> addresses;
  for (int i = 0; i < a.devices; ++i) {
    if (!tasks[i]) continue;
    ++tasked;
    if (!tasks[i]->aggregator_address().empty()) {
      addresses.push_back(tasks[i]->aggregator_address());
    }
    FEDLORA_ASSIGN_OR_RETURN(auto params, privacy::ParamsFromProto(tasks[i]->privacy()));
    std::vector<float> zero(params.dim, 0.0f);
    SecureRandom noise;
    FEDLORA_ASSIGN_OR_RETURN(auto up,
                             privacy::PrepareUpdate(zero.data(), zero.size(), params, noise));
    inputs[i] = std::move(up.secagg_input);
  }
  std::sort(addresses.begin(), addresses.end());
  addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
  const bench::ProcStats leader_before = bench::ReadProc(leader.pid());
  std::vector<bench::ProcStats> agg_before;
  for (auto& p : aggs) agg_before.push_back(bench::ReadProc(p.pid()));
  const auto machine_before = bench::MachineJiffies();
  const double t0 = Now();
  std::atomic<int> completed{0};
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < a.devices; ++i) {
      if (!tasks[i]) continue;
      threads.emplace_back([&, i] {
        SecureRandom rng;
        device::ParticipationResult r;
        (void)device::RunSecAggClient(*clients[i], *tasks[i], std::move(inputs[i]),
                                      absl::Minutes(5), rng, &r);
        completed += r.completed;
      });
    }
    for (auto& t : threads) t.join();
  }
  // The round's end is its commit in the store (aggregators answer their devices before it).
  FEDLORA_ASSIGN_OR_RETURN(auto observer, coordinator::OpenStateStore(dir));
  std::string state = "running";
  for (int i = 0; i < 30000 && state == "running"; ++i) {
    auto rounds = observer->ListRounds();
    if (rounds.ok() && !rounds->empty() && rounds->front().state != "running") {
      state = rounds->front().state;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  const double t1 = Now();
  const auto machine_after = bench::MachineJiffies();
  const double leader_cpu = bench::ReadProc(leader.pid()).cpu_seconds - leader_before.cpu_seconds;
  std::vector<double> agg_cpu;
  for (size_t k = 0; k < aggs.size(); ++k) {
    agg_cpu.push_back(bench::ReadProc(aggs[k].pid()).cpu_seconds - agg_before[k].cpu_seconds);
  }
  const double busy_cores = (machine_after.first - machine_before.first) /
                            (machine_after.second - machine_before.second) *
                            std::thread::hardware_concurrency();
  for (auto& p : aggs) p.Kill(SIGTERM);
  leader.Kill(SIGTERM);
  for (auto& p : aggs) p.Wait(10);
  leader.Wait(10);
  std::filesystem::remove_all(dir);
  return nlohmann::json{{"shard_size", shard_size},
                        {"aggregators", n_aggregators},
                        {"aggregators_named_in_tasks", addresses.size()},
                        {"devices_tasked", tasked},
                        {"devices_completed", completed.load()},
                        {"round", state},
                        {"wall_seconds", t1 - t0},
                        {"leader_cpu_seconds", leader_cpu},
                        {"aggregator_cpu_seconds", agg_cpu},
                        {"machine_busy_cores", busy_cores}};
}

}  // namespace
}  // namespace fedlora

int main(int argc, char** argv) {
  using namespace fedlora;
  Args a;
  CLI::App app("bench_aggregator: a sharded round on aggregator processes against one session");
  app.add_option("--devices", a.devices, "devices in the round")->capture_default_str();
  app.add_option("--shard-size", a.shard_size, "max_shard_size of the sharded run")
      ->capture_default_str();
  app.add_option("--aggregators", a.aggregators, "aggregator processes of the sharded run")
      ->capture_default_str();
  app.add_option("--dim", a.dim, "adapter values")->capture_default_str();
  app.add_flag("--json", a.json, "one JSON object");
  CLI11_PARSE(app, argc, argv);
  bench::RaiseOpenFilesLimit();
  testing::PostgresServer pg;
  if (!pg.ok()) {
    std::fprintf(stderr, "bench_aggregator: %s\n", pg.error().c_str());
    return 1;
  }
  nlohmann::json runs = nlohmann::json::array();
  for (auto [shard, aggs] : {std::pair<int, int>{0, 0}, {a.shard_size, a.aggregators}}) {
    auto run = RunRound(pg, a, shard, aggs);
    if (!run.ok()) {
      std::fprintf(stderr, "bench_aggregator: %s\n", run.status().ToString().c_str());
      return 1;
    }
    runs.push_back(*run);
  }
  nlohmann::json j = {{"devices", a.devices},
                      {"dim", a.dim},
                      {"cores", std::thread::hardware_concurrency()},
                      {"runs", runs}};
  std::printf("%s\n", a.json ? j.dump().c_str() : j.dump(2).c_str());
  return 0;
}
