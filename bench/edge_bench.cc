// bench_edge: signed check-ins per second against 1, 2 and 4 edge processes (issue 30), each a
// real `fedlora coordinator edge` process over loopback TLS, beside an idle leader (`fedlora
// coordinator run`) on a PostgreSQL 15 server this bench starts (Debian's binaries, as in the
// tests). Every check-in is eligible and answered by the edge from its coin: the selection
// window is an hour long at a sampling rate of 1e-7, so every coin is false (NOT_SELECTED; the
// bench checks that none was sampled) and no check-in reaches the leader.
//
//   bench_edge [--edges 0,1,2,4] [--seconds 5] [--workers 8] [--haproxy] [--json]
//
// --haproxy: the workers connect to HAProxy 2.6 (the config `fedlora cluster` writes: TCP
// passthrough, leastconn over the edges, health checks on their metrics /healthz; in front of
// the leader for 0 edges) instead of to the edges in turn, as devices of a cluster do; its CPU
// seconds are reported too.
//
// 0 edges: the same check-ins straight to the leader (one process answers everything, as a
// single-host coordinator does), the baseline in the same run.
// Workers are threads of this process, one device (own key, own TLS connection) each, spread
// over the edges in turn; each loops CheckIn. Per configuration: check-ins per second, the p99
// latency, each edge's CPU seconds (/proc/PID/stat) per check-in it answered, and the leader's
// CPU seconds over the same interval (idle but for its lease renewals).
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fedlora/common/adapter_blob.h"
#include "fedlora/coordinator/selection_coin.h"
#include "fedlora/coordinator/selection_window.h"
#include "fedlora/coordinator/state_folder.h"
#include "fedlora/device/coordinator_client.h"
#include "nlohmann/json.hpp"
#include "CLI/CLI.hpp"
#include "bench_devices.h"
#include "proc_stats.h"
#include "testutil/haproxy_server.h"
#include "testutil/postgres_server.h"
#include "testutil/process.h"

namespace fedlora {
namespace {

using bench::Now;

struct Args {
  std::vector<int> edges = {0, 1, 2, 4};
  double seconds = 5;
  int workers = 8;
  bool json = false;
  bool haproxy = false;
};

using bench::MachineJiffies;
int PortOf(const std::string& line) { return bench::PortOfLine(line); }

int Fail(const std::string& what) {
  std::fprintf(stderr, "bench_edge: %s\n", what.c_str());
  return 1;
}

}  // namespace
}  // namespace fedlora

int main(int argc, char** argv) {
  using namespace fedlora;
  Args a;
  CLI::App app("bench_edge: signed check-ins per second against edge processes");
  app.add_option("--edges", a.edges, "edge counts to measure, e.g. 0,1,2,4 (0 = the leader alone)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--seconds", a.seconds, "measured seconds per configuration")
      ->capture_default_str();
  app.add_option("--workers", a.workers, "devices checking in concurrently")->capture_default_str();
  app.add_flag("--haproxy", a.haproxy, "through HAProxy, as a cluster's devices");
  app.add_flag("--json", a.json, "one JSON object");
  CLI11_PARSE(app, argc, argv);
  bench::RaiseOpenFilesLimit();

  testing::PostgresServer pg;
  if (!pg.ok()) return Fail(pg.error());
  const std::string conninfo = pg.ConnInfo(pg.CreateDatabase());
  const std::string dir = std::filesystem::temp_directory_path().string() + "/bench_edge_state";
  std::filesystem::remove_all(dir);
  coordinator::StateFolderSpec spec;
  spec.state_dir = dir;
  spec.store = conninfo;
  spec.tokens = a.workers;
  spec.config = {{"population", 10000000}, {"goal", 2},  {"sampling_rate", 1e-7},
                 {"max_cohort", 100},      {"rounds", 1}, {"selection_window_s", 3600},
                 {"noise_multiplier", 1.0}, {"clip", 1.0},  {"delta", 1e-6}};
  spec.initial.lora = {{"peft_type", "LORA"}, {"r", 8}, {"target_modules", {"q_proj"}}};
  spec.initial.values.assign(1000, 0.0f);
  auto info = coordinator::CreateStateFolder(spec);
  if (!info.ok()) return Fail(info.status().ToString());
  const std::string logs = dir + "/logs";
  std::filesystem::create_directories(logs);
  ChildProcess leader = testing::StartFedlora(
      {"coordinator", "run", "--state", dir, "--listen", "127.0.0.1:0", "--metrics",
       a.haproxy ? "127.0.0.1:0" : ""},
      logs + "/leader");
  const std::string leader_line = leader.WaitForLine("listening on", 60);
  if (leader_line.empty()) return Fail("leader: " + leader.Err());
  const int leader_port = PortOf(leader_line);
  // HAProxy checks each backend's /healthz on its metrics port ("metrics on http://H:P/metrics").
  const auto metrics_port = [](ChildProcess& p) {
    const std::string line = p.WaitForLine("metrics on", 30);
    const size_t slash = line.rfind("/metrics");
    return slash == std::string::npos ? 0 : PortOf(line.substr(0, slash));
  };
  const int leader_metrics = a.haproxy ? metrics_port(leader) : 0;
  // The leader's window: every worker's coin must be false.
  auto observer = coordinator::OpenStateStore(dir);
  if (!observer.ok()) return Fail(observer.status().ToString());
  absl::StatusOr<coordinator::SelectionWindow> window = absl::NotFoundError("none yet");
  for (int i = 0; i < 100 && !window.ok(); ++i) {
    auto json = (*observer)->GetMeta(coordinator::kSelectionWindowKey);
    if (json.ok()) window = coordinator::SelectionWindowFromJson(*json);
    if (!window.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!window.ok()) return Fail("no selection window: " + window.status().ToString());

  std::vector<bench::BenchDevice> devs;  // enrolled once, through the first configuration
  nlohmann::json runs = nlohmann::json::array();
  for (int n_edges : a.edges) {
    std::vector<ChildProcess> edges;
    std::vector<int> ports;
    std::vector<HaproxyBackend> backends;
    for (int e = 0; e < n_edges; ++e) {
      edges.push_back(testing::StartFedlora(
          {"coordinator", "edge", "--state", dir, "--listen", "127.0.0.1:0", "--metrics",
           a.haproxy ? "127.0.0.1:0" : ""},
          logs + "/edge" + std::to_string(n_edges) + "_" + std::to_string(e)));
      const std::string line = edges.back().WaitForLine("listening on", 60);
      if (line.empty()) return Fail("edge: " + edges.back().Err());
      ports.push_back(PortOf(line));
      if (a.haproxy) {
        backends.push_back({"edge-" + std::to_string(e), "127.0.0.1", ports.back(),
                            metrics_port(edges.back())});
      }
    }
    if (n_edges == 0) {
      ports.push_back(leader_port);
      backends.push_back({"coord-0", "127.0.0.1", leader_port, leader_metrics});
    }
    std::unique_ptr<testing::HaproxyServer> haproxy;
    if (a.haproxy) {
      haproxy = std::make_unique<testing::HaproxyServer>(
          logs + "/haproxy" + std::to_string(n_edges), backends, 500,
          n_edges > 0 ? "leastconn" : "first");
      if (!haproxy->ok()) return Fail(haproxy->error());
      // Every backend checked up (one check each, rise 1) before the workers connect.
      const std::string up = n_edges > 0 ? "edge-" + std::to_string(n_edges - 1) + " is UP"
                                         : "coord-0 is UP";
      for (int i = 0; i < 100 && haproxy->Log().find(up) == std::string::npos; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      ports.assign(1, haproxy->port());
    }
    std::vector<std::unique_ptr<device::CoordinatorClient>> clients;
    for (int k = 0; k < a.workers; ++k) {
      device::ChannelOptions co;
      co.address = "127.0.0.1:" + std::to_string(ports[k % ports.size()]);
      co.ca_pem_path = info->ca_pem;
      co.server_name = "localhost";
      auto channel = device::MakeChannel(co);
      if (!channel.ok()) return Fail(channel.status().ToString());
      if (devs.size() <= static_cast<size_t>(k)) {
        auto d = bench::EnrollBenchDevice(*channel, info->tokens[k]);
        if (!d.ok()) return Fail("enrol: " + d.status().ToString());
        if (coordinator::CoinSelected(window->coin_key, window->round, d->id, window->q)) {
          return Fail("a worker's device is sampled; run again (a new key)");
        }
        devs.push_back(std::move(*d));
      }
      clients.push_back(
          std::make_unique<device::CoordinatorClient>(*channel, devs[k].key.get(), devs[k].id));
    }
    std::vector<std::vector<double>> lat(a.workers);
    std::vector<int> other(a.workers, 0);
    std::atomic<bool> measuring{false}, stop{false};
    std::vector<std::thread> w;
    for (int k = 0; k < a.workers; ++k) {
      w.emplace_back([&, k] {
        v1::CheckInRequest req;
        req.set_eligible(true);
        while (!stop) {
          const double s = Now();
          auto r = clients[k]->CheckIn(req, absl::Seconds(10));
          if (!measuring) continue;
          if (r.ok() && r->rejection().reason() == v1::REJECTION_NOT_SELECTED) {
            lat[k].push_back(Now() - s);
          } else {
            ++other[k];
          }
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));  // connections and TLS sessions warm
    std::vector<bench::ProcStats> before;
    for (auto& e : edges) before.push_back(bench::ReadProc(e.pid()));
    const bench::ProcStats leader_before = bench::ReadProc(leader.pid());
    const bench::ProcStats self_before = bench::ReadProc(getpid());
    const bench::ProcStats haproxy_before = bench::ReadProc(haproxy ? haproxy->pid() : getpid());
    const auto machine_before = MachineJiffies();
    measuring = true;
    const double t0 = Now();
    std::this_thread::sleep_for(std::chrono::duration<double>(a.seconds));
    measuring = false;
    const double t1 = Now();
    std::vector<double> edge_cpu;
    for (size_t e = 0; e < edges.size(); ++e) {
      edge_cpu.push_back(bench::ReadProc(edges[e].pid()).cpu_seconds - before[e].cpu_seconds);
    }
    const double leader_cpu = bench::ReadProc(leader.pid()).cpu_seconds - leader_before.cpu_seconds;
    const double client_cpu = bench::ReadProc(getpid()).cpu_seconds - self_before.cpu_seconds;
    const double haproxy_cpu =
        haproxy ? bench::ReadProc(haproxy->pid()).cpu_seconds - haproxy_before.cpu_seconds : 0;
    const auto machine_after = MachineJiffies();
    const double busy_cores = (machine_after.first - machine_before.first) /
                              (machine_after.second - machine_before.second) *
                              std::thread::hardware_concurrency();
    stop = true;
    for (auto& t : w) t.join();
    for (auto& e : edges) {
      e.Kill(SIGTERM);
      if (e.Wait(10) < 0) e.Kill(SIGKILL);
    }
    std::vector<double> all;
    int others = 0;
    for (int k = 0; k < a.workers; ++k) {
      all.insert(all.end(), lat[k].begin(), lat[k].end());
      others += other[k];
    }
    std::sort(all.begin(), all.end());
    const double p99 = all.empty() ? 0 : all[std::min(all.size() - 1, size_t(0.99 * all.size()))];
    double cpu_sum = 0;
    for (double c : edge_cpu) cpu_sum += c;
    const double n = static_cast<double>(all.size());
    runs.push_back({{"edges", n_edges},
                    {"checkins_per_second", n / (t1 - t0)},
                    {"checkin_p99_ms", 1000 * p99},
                    {"not_not_selected", others},
                    {"edge_cpu_seconds", edge_cpu},
                    {"edge_cpu_ms_per_checkin", n > 0 ? 1000 * cpu_sum / n : 0},
                    {"checkins_per_edge_cpu_second", cpu_sum > 0 ? n / cpu_sum : 0},
                    {"leader_cpu_seconds", leader_cpu},
                    {"leader_cpu_ms_per_checkin", n > 0 ? 1000 * leader_cpu / n : 0},
                    {"client_cpu_seconds", client_cpu},
                    {"haproxy_cpu_seconds", haproxy_cpu},
                    {"machine_busy_cores", busy_cores}});
  }
  leader.Kill(SIGTERM);
  if (leader.Wait(10) < 0) leader.Kill(SIGKILL);
  nlohmann::json j = {{"workers", a.workers},
                      {"seconds", a.seconds},
                      {"answered_by", "coin (NOT_SELECTED, q 1e-7)"},
                      {"through", a.haproxy ? "haproxy" : "direct"},
                      {"cores", std::thread::hardware_concurrency()},
                      {"runs", runs}};
  std::printf("%s\n", a.json ? j.dump().c_str() : j.dump(2).c_str());
  std::filesystem::remove_all(dir);
  return 0;
}
