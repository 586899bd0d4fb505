// SimCoordinator: one coordinator process, or a local cluster (sim_coordinator.h).
#include "sim_coordinator.h"

#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "fedlora/common/child_process.h"
#include "fedlora/common/net_address.h"
#include "fedlora/coordinator/cluster.h"

namespace fedlora::sim {
namespace {

class OneProcess : public SimCoordinator {
 public:
  OneProcess(ChildProcess p, std::string work, std::string address,
             coordinator::StateFolderInfo folder, std::string state_dir)
      : process_(std::move(p)),
        work_(std::move(work)),
        address_(std::move(address)),
        folder_(std::move(folder)),
        state_dir_(std::move(state_dir)) {}
  ~OneProcess() override { (void)Stop(); }
  const std::string& address() const override { return address_; }
  const coordinator::StateFolderInfo& folder() const override { return folder_; }
  const std::string& state_dir() const override { return state_dir_; }
  std::string Description() const override { return "coordinator process over gRPC (real clock)"; }
  absl::Status Stop() override {
    if (stopped_) return absl::OkStatus();
    stopped_ = true;
    process_.Kill(SIGTERM);
    if (process_.Wait(30) != 0) {
      return absl::InternalError(absl::StrCat("the coordinator process did not stop cleanly (log: ",
                                              work_, "/coordinator.err): ", process_.Err()));
    }
    return absl::OkStatus();
  }

 private:
  ChildProcess process_;
  std::string work_, address_;
  coordinator::StateFolderInfo folder_;
  std::string state_dir_;
  bool stopped_ = false;
};

absl::StatusOr<std::unique_ptr<SimCoordinator>> StartOneProcess(const std::string& binary,
                                                                const std::string& work,
                                                                coordinator::StateFolderSpec spec) {
  spec.state_dir = work + "/coordinator";
  auto folder = coordinator::CreateStateFolder(spec);
  if (!folder.ok()) return folder.status();
  ChildProcess p = ChildProcess::Start(
      binary,
      {"coordinator", "run", "--state", spec.state_dir, "--listen", "127.0.0.1:0", "--metrics", ""},
      work + "/coordinator");
  const std::string listening = p.WaitForLine("listening on", 60);
  const size_t colon = listening.rfind(':');
  if (listening.empty() || colon == std::string::npos) {
    return absl::UnavailableError(
        absl::StrCat("the coordinator process did not start listening within 60 s (its log: ", work,
                     "/coordinator.err): ", p.Err()));
  }
  const std::string address =
      "127.0.0.1:" + std::to_string(std::atoi(listening.c_str() + colon + 1));
  return std::unique_ptr<SimCoordinator>(
      new OneProcess(std::move(p), work, address, std::move(*folder), spec.state_dir));
}

// RunCluster supervises on its own thread until Stop.
class Cluster : public SimCoordinator {
 public:
  ~Cluster() override { (void)Stop(); }
  const std::string& address() const override { return address_; }
  const coordinator::StateFolderInfo& folder() const override { return folder_; }
  const std::string& state_dir() const override { return state_dir_; }
  std::string Description() const override { return description_; }
  absl::StatusOr<std::map<std::string, int64_t>> AggregatorShards() const override {
    return coordinator::AggregatorShardsSummed(summary_);
  }
  absl::Status Stop() override {
    if (!thread_.joinable()) return run_status_;
    stop_ = true;
    thread_.join();
    // The folder (database included) goes once everything stopped cleanly; kept otherwise,
    // for its logs.
    if (run_status_.ok()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
    return run_status_;
  }

  std::string dir_, address_, state_dir_, description_;
  coordinator::StateFolderInfo folder_;
  nlohmann::json summary_;  // RunCluster's: every process, its role and ports
  std::atomic<bool> stop_{false};
  absl::Status run_status_;
  std::thread thread_;
};

absl::StatusOr<std::unique_ptr<SimCoordinator>> StartCluster(const SimConfig& c,
                                                             const std::string& binary,
                                                             const std::string& work,
                                                             coordinator::StateFolderSpec spec) {
  auto cluster = std::make_unique<Cluster>();
  // Under /tmp and world-traversable: as root, PostgreSQL runs as nobody in DIR/pg (and a
  // short path keeps its unix socket within the 107-byte limit).
  std::string tmpl = "/tmp/fedlora-sim-cluster-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return absl::InternalError("sim: cannot create a cluster folder under /tmp");
  }
  ::chmod(tmpl.c_str(), 0755);
  cluster->dir_ = tmpl;
  cluster->state_dir_ = tmpl + "/state";
  coordinator::ClusterSpec cs;
  cs.dir = tmpl;
  cs.model = "(the simulator's state folder)";  // init_state makes it, not `coordinator init`
  cs.fedlora_binary = binary;
  cs.standbys = c.grpc_standbys;
  cs.edges = c.grpc_edges;
  cs.aggregators = c.grpc_aggregators;
  cs.port = PickFreeLoopbackPort();
  Cluster* raw = cluster.get();
  cs.init_state = [raw, spec](const std::string& conninfo) mutable -> absl::Status {
    spec.state_dir = raw->state_dir_;
    spec.store = conninfo;
    auto folder = coordinator::CreateStateFolder(spec);
    if (!folder.ok()) return folder.status();
    raw->folder_ = std::move(*folder);
    return absl::OkStatus();
  };
  auto plan = coordinator::PlanCluster(cs);
  if (!plan.ok()) return plan.status();
  auto ready = std::make_shared<std::promise<nlohmann::json>>();
  auto ready_future = ready->get_future();
  const std::string log_file = work + "/cluster.log";
  raw->thread_ = std::thread([raw, cluster_plan = *plan, ready, log_file] {
    bool announced = false;
    raw->run_status_ = coordinator::RunCluster(
        cluster_plan, [raw] { return raw->stop_.load(); },
        [&](const nlohmann::json& summary) {
          announced = true;
          ready->set_value(summary);
        },
        [log_file](const std::string& line) {
          if (FILE* f = std::fopen(log_file.c_str(), "a")) {
            std::fprintf(f, "%s\n", line.c_str());
            std::fclose(f);
          }
        });
    if (!announced) ready->set_value(nlohmann::json());
  });
  const nlohmann::json summary = ready_future.get();
  if (summary.is_null()) {
    raw->thread_.join();
    return absl::Status(raw->run_status_.code(),
                        absl::StrCat(raw->run_status_.message(), " (cluster folder ", tmpl,
                                     ", its log ", log_file, ")"));
  }
  raw->address_ = summary.value("endpoint", "");
  raw->summary_ = summary;
  std::string what;
  for (const auto& p : summary["processes"]) {
    absl::StrAppend(&what, what.empty() ? "" : ", ", p.value("role", ""), " ", p.value("name", ""));
  }
  raw->description_ = absl::StrCat("a cluster over gRPC (real clock): ", what,
                                   "; devices through HAProxy at ", raw->address_);
  return std::unique_ptr<SimCoordinator>(std::move(cluster));
}

}  // namespace

absl::StatusOr<std::unique_ptr<SimCoordinator>> SimCoordinator::Start(
    const SimConfig& config, const std::string& fedlora_binary, const std::string& work,
    coordinator::StateFolderSpec spec) {
  if (config.grpc_cluster) return StartCluster(config, fedlora_binary, work, std::move(spec));
  return StartOneProcess(fedlora_binary, work, std::move(spec));
}

}  // namespace fedlora::sim
