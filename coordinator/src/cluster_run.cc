// RunCluster / StopCluster: start, supervise and stop the processes of `fedlora cluster`.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "fedlora/common/child_process.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/net_address.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/coordinator/cluster.h"
#include "fedlora/coordinator/metrics_http.h"

namespace fedlora::coordinator {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string Tail(const std::string& s, size_t n = 1500) {
  return s.size() <= n ? s : s.substr(s.size() - n);
}

// Running (a zombie, exited but not yet reaped by its parent, is not).
bool Alive(int pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const size_t paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] != 'Z';
}

// Runs a one-shot step (initdb, createdb, coordinator init) to completion within `seconds`.
absl::Status RunStep(ChildProcess p, const std::string& what, double seconds) {
  const int code = p.Wait(seconds);
  if (code == 0) return absl::OkStatus();
  if (code == -1) p.Kill(SIGKILL);
  return absl::FailedPreconditionError(
      absl::StrCat("cluster: ", what, " failed (exit ", code, "): ", Tail(p.Err() + p.Out())));
}

absl::Status CheckBinaries(const ClusterPlan& plan) {
  for (const std::string& bin : {plan.pg_bin + "/initdb", plan.pg_bin + "/postgres",
                                 plan.pg_bin + "/createdb", plan.pg_bin + "/pg_isready",
                                 HaproxyBinary()}) {
    if (::access(bin.c_str(), X_OK) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cluster: ", bin,
                       " not found (hint: `bash scripts/setup.sh test` installs "
                       "postgresql-15 and haproxy)"));
    }
  }
  if (::geteuid() == 0 && ::access("/usr/bin/setpriv", X_OK) != 0) {
    return absl::FailedPreconditionError(
        "cluster: running as root needs /usr/bin/setpriv (util-linux) to run PostgreSQL as "
        "nobody");
  }
  return absl::OkStatus();
}

// First `up` of DIR: the database folder (as the server's user) and, once the server runs,
// the database and the state folder.
absl::Status InitDatabaseFolder(const ClusterPlan& plan) {
  const std::string pg = plan.spec.dir + "/pg";
  if (fs::exists(pg + "/data/PG_VERSION")) return absl::OkStatus();
  fs::create_directories(pg);
  if (!ChildProcess::GiveToUnprivilegedUser(pg)) {
    return absl::FailedPreconditionError("cluster: cannot hand " + pg + " to the user nobody");
  }
  return RunStep(ChildProcess::StartUnprivileged(plan.pg_bin + "/initdb",
                                                 {"-D", pg + "/data", "-U", "fedlora", "-A",
                                                  "trust", "-E", "UTF8", "--no-locale"},
                                                 plan.spec.dir + "/logs/initdb", {{"LC_ALL", "C"}}),
                 "initdb in " + pg +
                     " (when run as root the user nobody must be able to reach DIR: pick a "
                     "folder under /tmp or make its parents world-executable)",
                 120);
}

absl::Status InitState(const ClusterPlan& plan) {
  const ClusterSpec& s = plan.spec;
  if (fs::exists(s.dir + "/state/coordinator.json")) return absl::OkStatus();
  // The port accepts connections before the server does ("the database system is starting
  // up"): wait until pg_isready says it accepts them.
  const auto until = Clock::now() + std::chrono::seconds(60);
  while (true) {
    ChildProcess ping = ChildProcess::Start(
        plan.pg_bin + "/pg_isready", {"-h", "127.0.0.1", "-p", std::to_string(plan.pg_port)},
        s.dir + "/logs/pg_isready");
    if (ping.Wait(10) == 0) break;
    if (Clock::now() >= until) {
      return absl::UnavailableError(absl::StrCat(
          "cluster: PostgreSQL on port ", plan.pg_port,
          " did not accept connections within 60 s (see ", s.dir, "/logs/postgres.err)"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  FEDLORA_RETURN_IF_ERROR(RunStep(
      ChildProcess::Start(
          plan.pg_bin + "/createdb",
          {"-h", "127.0.0.1", "-p", std::to_string(plan.pg_port), "-U", "fedlora", "fedlora"},
          s.dir + "/logs/createdb"),
      "createdb", 60));
  if (s.init_state) return s.init_state(plan.conninfo);
  std::vector<std::string> args = {"coordinator", "init",        "--state", s.dir + "/state",
                                   "--store",     plan.conninfo, "--model", s.model};
  if (s.shard_size > 0) {
    args.insert(args.end(), {"--max-shard-size", std::to_string(s.shard_size)});
  }
  args.insert(args.end(), s.init_args.begin(), s.init_args.end());
  return RunStep(ChildProcess::Start(s.fedlora_binary, args, s.dir + "/logs/coordinator-init"),
                 "`coordinator init --store`", 300);
}

// The folder's max_shard_size (0: one session per round, or unreadable).
int FolderShardSize(const std::string& state_dir) {
  auto text = ReadFileToString(state_dir + "/coordinator.json");
  if (!text.ok()) return 0;
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return 0;
  auto it = j.find("max_shard_size");
  return it != j.end() && it->is_number_integer() ? it->get<int>() : 0;
}

absl::Status WaitReady(ChildProcess& p, const ClusterProcess& c, const std::string& log) {
  const auto until = Clock::now() + std::chrono::seconds(90);
  while (Clock::now() < until) {
    if (!p.Running()) break;
    if (c.ready_port > 0 && LoopbackPortAccepts(c.ready_port)) return absl::OkStatus();
    if (!c.ready_line.empty() && absl::StrContains(p.Out(), c.ready_line)) {
      return absl::OkStatus();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "cluster: ", c.name, " (", c.role, ") did not become ready",
      p.Running() ? " within 90 s" : " (it exited)", "; ", log, ".err: ", Tail(p.Err())));
}

void StopAll(std::vector<std::unique_ptr<ChildProcess>>& started,
             const std::vector<ClusterProcess>& plan,
             const std::function<void(const std::string&)>& log) {
  for (size_t i = started.size(); i-- > 0;) {
    ChildProcess& p = *started[i];
    if (!p.Running()) continue;
    // postgres: SIGINT is its fast shutdown (rolls back, checkpoints); SIGTERM waits for
    // clients. The others stop cleanly on SIGTERM (a leader releases its lease).
    p.Kill(plan[i].role == "database" ? SIGINT : SIGTERM);
    if (p.Wait(10) == -1) {
      log(absl::StrCat(plan[i].name, " did not stop within 10 s: SIGKILL"));
      p.Kill(SIGKILL);
      p.Wait(10);
    }
    log(absl::StrCat("stopped ", plan[i].name));
  }
}

}  // namespace

absl::Status RunCluster(const ClusterPlan& plan, const std::function<bool()>& stop,
                        const std::function<void(const nlohmann::json&)>& ready,
                        const std::function<void(const std::string&)>& log) {
  const ClusterSpec& s = plan.spec;
  FEDLORA_RETURN_IF_ERROR(CheckBinaries(plan));
  fs::create_directories(s.dir + "/logs");
  if (auto old = ReadFileToString(s.dir + "/cluster.json"); old.ok()) {
    auto j = nlohmann::json::parse(*old, nullptr, false);
    if (!j.is_discarded() && Alive(j.value("supervisor_pid", 0))) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cluster: a cluster already runs in ", s.dir, " (supervisor pid ",
          j.value("supervisor_pid", 0), "; hint: `fedlora cluster down --dir ", s.dir, "`)"));
    }
  }
  FEDLORA_RETURN_IF_ERROR(InitDatabaseFolder(plan));
  std::ofstream(s.dir + "/haproxy.cfg") << HaproxyConfig(plan.haproxy);
  std::vector<std::unique_ptr<ChildProcess>> started;
  nlohmann::json procs = nlohmann::json::array();
  absl::Status status;
  for (const ClusterProcess& c : plan.processes) {
    const std::string logs = s.dir + "/logs/" + c.name;
    // The readiness check reads the new log: none of an earlier `up` may answer it.
    std::error_code ec;
    fs::remove(logs + ".out", ec);
    fs::remove(logs + ".err", ec);
    started.push_back(std::make_unique<ChildProcess>(
        c.unprivileged ? ChildProcess::StartUnprivileged(c.binary, c.args, logs, {{"LC_ALL", "C"}})
                       : ChildProcess::Start(c.binary, c.args, logs)));
    status = WaitReady(*started.back(), c, logs);
    if (!status.ok()) break;
    log(absl::StrCat("started ", c.name, " (", c.role, ", pid ", started.back()->pid(), ")"));
    procs.push_back({{"name", c.name},
                     {"role", c.role},
                     {"pid", started.back()->pid()},
                     {"port", c.listen_port},
                     {"metrics_port", c.metrics_port},
                     {"log", logs + ".out"}});
    if (c.role == "database") {
      status = InitState(plan);
      if (!status.ok()) break;
      const int pinned = FolderShardSize(s.dir + "/state");
      if (s.shard_size > 0 && pinned != s.shard_size) {
        log(absl::StrCat("note: --shard-size ", s.shard_size, " is not used: ", s.dir,
                         "/state was made by an earlier `up` with max_shard_size ", pinned,
                         " (pinned at init; hint: a new --dir)"));
      }
      if (s.aggregators > 0 && pinned <= 0) {
        log(absl::StrCat("note: rounds are not sharded (", s.dir,
                         "/state/coordinator.json: max_shard_size 0), so the ", s.aggregators,
                         " aggregators stay idle and the leader runs each round's one "
                         "secure-aggregation session (hint: `--shard-size S` on the first "
                         "`up` of a new --dir)"));
      }
    }
  }
  if (!status.ok()) {
    StopAll(started, plan.processes, log);
    return status;
  }
  nlohmann::json summary = {{"dir", s.dir},
                            {"supervisor_pid", ::getpid()},
                            {"endpoint", absl::StrCat("127.0.0.1:", s.port)},
                            {"ca", s.dir + "/state/tls/ca.pem"},
                            {"server_name", "localhost"},
                            {"tokens_file", s.dir + "/state/enroll-tokens.txt"},
                            {"state", s.dir + "/state"},
                            {"store", plan.conninfo},
                            {"haproxy_config", s.dir + "/haproxy.cfg"},
                            {"lease_ttl_s", s.lease_ttl_s},
                            {"max_shard_size", FolderShardSize(s.dir + "/state")},
                            {"processes", procs}};
  std::ofstream(s.dir + "/cluster.json") << summary.dump(2) << "\n";
  ready(summary);
  std::vector<bool> reported(started.size(), false);
  while (!stop()) {
    for (size_t i = 0; i < started.size(); ++i) {
      if (!reported[i] && !started[i]->Running()) {
        reported[i] = true;
        log(absl::StrCat(plan.processes[i].name, " (", plan.processes[i].role, ") exited with ",
                         started[i]->Wait(0), " (not restarted; see ", s.dir, "/logs/",
                         plan.processes[i].name, ".err)"));
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  StopAll(started, plan.processes, log);
  std::error_code ec;
  fs::remove(s.dir + "/cluster.json", ec);
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, int64_t>> AggregatorShardsSummed(
    const nlohmann::json& summary) {
  std::map<std::string, int64_t> summed;
  if (!summary.contains("processes")) return summed;
  for (const auto& p : summary["processes"]) {
    if (p.value("role", "") != "aggregator") continue;
    const std::string name = p.value("name", "");
    auto value = ScrapeMetric("127.0.0.1", p.value("metrics_port", 0),
                              "fedlora_aggregator_shards_total", {{"outcome", "summed"}});
    if (!value.ok()) {
      return absl::UnavailableError(absl::StrCat("cluster: aggregator ", name,
                                                 " did not answer: ", value.status().message()));
    }
    summed[name] = static_cast<int64_t>(*value);
  }
  return summed;
}

absl::StatusOr<nlohmann::json> StopCluster(const std::string& dir, double seconds) {
  auto text = ReadFileToString(dir + "/cluster.json");
  if (!text.ok()) {
    return absl::NotFoundError(absl::StrCat("cluster: no cluster.json in ", dir,
                                            " (no cluster runs there, or it stopped cleanly)"));
  }
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded()) return absl::DataLossError(dir + "/cluster.json is not JSON");
  std::vector<std::pair<std::string, int>> pids;  // supervisor first, then the reverse order
  pids.push_back({"supervisor", j.value("supervisor_pid", 0)});
  const auto& procs = j["processes"];
  for (size_t i = procs.size(); i-- > 0;) {
    pids.push_back({procs[i].value("name", ""), procs[i].value("pid", 0)});
  }
  nlohmann::json stopped = nlohmann::json::array();
  for (const auto& [name, pid] : pids) {
    if (!Alive(pid)) continue;
    ::kill(pid, name == "postgres" ? SIGINT : SIGTERM);
    const auto until = Clock::now() + std::chrono::duration<double>(seconds);
    while (Alive(pid) && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (Alive(pid)) ::kill(pid, SIGKILL);
    stopped.push_back({{"name", name}, {"pid", pid}});
  }
  std::error_code ec;
  fs::remove(dir + "/cluster.json", ec);
  return nlohmann::json{{"dir", dir}, {"stopped", stopped}};
}

}  // namespace fedlora::coordinator
