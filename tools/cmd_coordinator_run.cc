// fedlora coordinator run --state DIR [--listen HOST:PORT] [--insecure] [--metrics HOST:PORT]
// [--holder NAME] [--lease-ttl S] [--advertise HOST:PORT]: on a multi-host folder (PostgreSQL) a
// standby until it leads.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli_common.h"
#include "fedlora/common/file_util.h"
#include "fedlora/coordinator/cluster_key.h"
#include "fedlora/coordinator/coordinator_config.h"
#include "fedlora/coordinator/coordinator_server.h"
#include "fedlora/coordinator/fault_injection.h"
#include "fedlora/coordinator/leadership.h"
#include "fedlora/coordinator/metrics_http.h"
#include "fedlora/coordinator/process_registry.h"
#include "fedlora/coordinator/state_folder.h"
#include "fedlora/coordinator/window_publisher.h"

namespace fedlora::cli {
void RegisterCommand_coordinator_run(CLI::App& app) {
  struct Opts {
    ServeFlags serve{"", "127.0.0.1:50051", "", "", "127.0.0.1:9464"};
    std::string holder, advertise;
    bool exit_when_done = false;
    int rounds = -1;
    double lease_ttl = 10;
  };
  auto o = std::make_shared<Opts>();
  auto* parent = GetOrAddSubcommand(app, "coordinator",
                                    "the federated coordinator: init, run, status, tokens, revoke");
  auto* cmd = parent->add_subcommand("run", "serve devices: rounds with secure aggregation and DP");
  cmd->footer(
      "Examples:\n"
      "  fedlora coordinator run --state coord\n"
      "  fedlora coordinator run --state coord --listen 0.0.0.0:50051 --metrics 127.0.0.1:9464\n"
      "Stops on SIGINT/SIGTERM; a restart on the same --state resumes (kill -9 included).");
  AddServeFlags(cmd, &o->serve, "state folder made by `coordinator init`",
                "HOST:PORT for devices (port 0 picks one)");
  cmd->add_option("--rounds", o->rounds, "override the number of rounds (0 = until the budget)")
      ->check(AtLeast(0));
  cmd->add_flag("--exit-when-done", o->exit_when_done,
                "exit once training is over instead of serving 'training is over'");
  cmd->add_option("--advertise", o->advertise,
                  "multi-host: HOST:PORT edge processes reach this leader at (default the "
                  "listen address with the bound port)");
  cmd->add_option("--holder", o->holder,
                  "multi-host: this process's name in the leader lease (default host:pid:random)");
  cmd->add_option("--lease-ttl", o->lease_ttl,
                  "multi-host: seconds a leader's lease lasts unrenewed (a standby takes over "
                  "after it)")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 3600.0));
  cmd->callback([o] {
    if (absl::Status s = CheckStateFolder(o->serve.state, "--model DIR"); !s.ok()) {
      return (void)Fail(s);
    }
    auto text = ReadFileToString(o->serve.state + "/coordinator.json");
    if (!text.ok()) return (void)Fail(text.status());
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_discarded()) {
      return (void)Fail(
          absl::InvalidArgumentError(o->serve.state + "/coordinator.json is not JSON"));
    }
    auto opts = coordinator::CoordinatorOptionsFromJson(j);
    if (!opts.ok()) return (void)Fail(opts.status());
    coordinator::ServerOptions so;
    ApplyServeFlags(o->serve, &so);
    so.advertise = o->advertise;
    so.coordinator = *opts;
    if (o->rounds >= 0) so.coordinator.max_rounds = o->rounds;
    if (const char* crash = std::getenv(coordinator::kCrashAtEnv)) {
      if (coordinator::kFaultInjection) {
        so.coordinator.crash_at = crash;
      } else {
        std::fprintf(stderr,
                     "fedlora: warning: %s is ignored: this build has no fault injection "
                     "(configured with -DFEDLORA_FAULT_INJECTION=OFF)\n",
                     coordinator::kCrashAtEnv);
      }
    }
    const bool json = o->serve.json;
    so.coordinator.log = [json](const std::string& line) { LogLine(json, line); };
    WarnIfInsecure(o->serve);
    auto conninfo = coordinator::StateStoreConninfo(o->serve.state);
    if (!conninfo.ok()) return (void)Fail(conninfo.status());
    if (!conninfo->empty()) {
      // Checked before waiting as a standby, not only once it leads: a leader needs it to
      // hand shards to aggregators (cluster_key.h).
      if (auto key = coordinator::ReadClusterKey(o->serve.state); !key.ok()) {
        return (void)Fail(key.status());
      }
    }
    InstallStopSignals();
    so.lease_ttl = std::chrono::milliseconds(static_cast<int64_t>(o->lease_ttl * 1000));
    coordinator::LeadershipOptions lo;
    lo.conninfo = *conninfo;
    lo.holder = o->holder.empty() ? coordinator::DefaultHolderName() : o->holder;
    lo.ttl = so.lease_ttl;
    lo.log = so.coordinator.log;
    double eps = 0;
    coordinator::RoundSummary cur;
    bool finished = false, led = false;
    // Multi-host: this process's row in the process registry (role standby, then leader, ...)
    // and, while a standby, /metrics and /healthz (503 "standby": HAProxy keeps it out) on the
    // metrics port the leader will use. A port 0 is resolved once, so the address stays put.
    std::shared_ptr<coordinator::ProcessRegistry> registry;
    std::unique_ptr<coordinator::ProcessHeartbeat> beat;
    coordinator::MetricsRegistry standby_metrics;
    coordinator::SetRoleMetric(standby_metrics, coordinator::kRoleStandby);
    std::string metrics_address;  // HOST:PORT others reach the metrics port at
    if (!conninfo->empty()) {
      if (auto r = coordinator::OpenProcessRegistry(*conninfo); r.ok()) {
        registry = std::move(*r);
      } else {
        LogLine(json, absl::StrCat("process registry: ", r.status().ToString(),
                                   "; this process will not be listed by `coordinator status`"));
      }
    }
    // Single-host: serve once. Multi-host: a standby until this process leads, then serve until
    // stopped or until it loses the lease (fenced or not renewed), then a standby again.
    while (!StopRequested() && !finished) {
      if (!conninfo->empty()) {
        std::unique_ptr<coordinator::MetricsHttpServer> standby_http;
        if (!so.metrics_listen.empty()) {
          const size_t colon = so.metrics_listen.rfind(':');
          const std::string host = so.metrics_listen.substr(0, colon);
          int port = -1;
          if (colon == std::string::npos ||
              !absl::SimpleAtoi(so.metrics_listen.substr(colon + 1), &port)) {
            return (void)Fail(absl::InvalidArgumentError(absl::StrCat(
                "--metrics ", so.metrics_listen, " is not HOST:PORT (e.g. 127.0.0.1:9464)")));
          }
          auto http = coordinator::MetricsHttpServer::Start(&standby_metrics, host, port, [] {
            return std::pair<int, std::string>(503, "standby");
          });
          if (!http.ok()) return (void)Fail(http.status());
          standby_http = std::move(*http);
          so.metrics_listen = absl::StrCat(host, ":", standby_http->port());
          metrics_address =
              coordinator::AdvertisedAddress("", so.metrics_listen, standby_http->port());
        }
        if (registry && !beat) {
          coordinator::ProcessHeartbeatOptions bo;
          bo.registry = registry;
          bo.log = so.coordinator.log;
          auto b = coordinator::ProcessHeartbeat::Start(
              coordinator::ThisProcess(coordinator::kRoleStandby, "", metrics_address, lo.holder),
              bo);
          if (!b.ok()) return (void)Fail(b.status());
          beat = std::move(*b);
        } else if (beat) {
          (void)beat->SetRole(coordinator::kRoleStandby, "");
        }
        auto lease = coordinator::AwaitLeadership(lo, [] { return StopRequested(); });
        if (!lease.ok()) {
          if (lease.status().code() == absl::StatusCode::kCancelled) break;
          return (void)Fail(lease.status());
        }
        so.lease = *lease;
      }
      auto server = coordinator::CoordinatorServer::Start(so);
      if (!server.ok()) return (void)Fail(server.status());
      led = true;
      if (beat) {
        (void)beat->SetRole(
            coordinator::kRoleLeader,
            coordinator::AdvertisedAddress(o->advertise, o->serve.listen, (*server)->port()));
      }
      LogLine(json,
              absl::StrCat("listening on ", o->serve.listen.substr(0, o->serve.listen.rfind(':')),
                           ":", (*server)->port(), o->serve.insecure ? " (plaintext)" : " (TLS)"));
      if ((*server)->metrics_port() > 0) {
        LogLine(json, absl::StrCat("metrics on http://",
                                   o->serve.metrics.substr(0, o->serve.metrics.rfind(':')), ":",
                                   (*server)->metrics_port(), "/metrics"));
      }
      while (!StopRequested() && !(*server)->lost_leadership()) {
        if (o->exit_when_done && (*server)->rounds().finished()) {
          finished = true;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      eps = (*server)->rounds().epsilon();
      cur = (*server)->rounds().Current();
      const bool lost = (*server)->lost_leadership();
      (*server)->Shutdown();
      if (conninfo->empty()) break;
      if (lost) LogLine(json, "stepped down; waiting as a standby");
    }
    if (!led) {
      // A standby that never led read no ledger: it has no epsilon to tell.
      LogLine(json, "stopped (a standby that never led; `coordinator status` shows the epsilon)");
      if (json) PrintJson({{"epsilon", nullptr}, {"role", "standby"}});
      return;
    }
    LogLine(json, absl::StrCat("stopped; epsilon ", eps));
    if (json) {
      PrintJson({{"epsilon", eps}, {"next_round", cur.round}, {"state", cur.phase}});
    }
  });
}

}  // namespace fedlora::cli
