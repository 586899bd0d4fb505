// fedlora coordinator edge --state DIR [--listen HOST:PORT] [--metrics HOST:PORT] [--insecure]
// [--json]: an edge process of a multi-host population (coordinator/edge_server.h).
#include <csignal>
#include <cstdio>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli_common.h"
#include "fedlora/coordinator/edge_server.h"

namespace fedlora::cli {
void RegisterCommand_coordinator_edge(CLI::App& app) {
  struct Opts {
    std::string state, listen = "127.0.0.1:50061", tls_cert, tls_key, metrics = "127.0.0.1:9465";
    bool insecure = false, json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* parent = GetOrAddSubcommand(app, "coordinator",
                                    "the federated coordinator: init, run, status, tokens, revoke");
  auto* cmd = parent->add_subcommand(
      "edge", "multi-host: serve devices' check-ins beside the leader (any number of edges)");
  cmd->footer(
      "Examples:\n"
      "  fedlora coordinator edge --state coord --listen 0.0.0.0:50061 --metrics 127.0.0.1:9465\n"
      "Answers check-ins the leader would reject from the selection window it publishes in the\n"
      "population's database; forwards sampled check-ins and secure aggregation to the leader.\n"
      "Stops on SIGINT/SIGTERM; stateless, so any number may run and be restarted at will.");
  cmd->add_option("--state", o->state, "a multi-host state folder (`coordinator init --store`)")
      ->required();
  cmd->add_option("--listen", o->listen, "HOST:PORT for devices (port 0 picks one)")
      ->capture_default_str();
  cmd->add_flag("--insecure", o->insecure, "plaintext gRPC (loopback only; for tests)");
  cmd->add_option("--tls-cert", o->tls_cert, "server certificate PEM (default <state>/tls/server.pem)");
  cmd->add_option("--tls-key", o->tls_key, "server key PEM (default <state>/tls/server.key)");
  cmd->add_option("--metrics", o->metrics, "HOST:PORT of the Prometheus /metrics endpoint ('' = off)")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "print one JSON summary at exit instead of the log");
  cmd->callback([o] {
    const bool json = o->json;
    coordinator::EdgeServerOptions eo;
    eo.state_dir = o->state;
    eo.listen = o->listen;
    eo.insecure = o->insecure;
    eo.tls_cert = o->tls_cert;
    eo.tls_key = o->tls_key;
    eo.metrics_listen = o->metrics;
    eo.rounds.log = [json](const std::string& line) { LogLine(json, "edge: " + line); };
    if (o->insecure) {
      std::fprintf(stderr,
                   "fedlora: warning: --insecure: plaintext gRPC on %s (loopback only; never in "
                   "production)\n",
                   o->listen.c_str());
    }
    InstallStopSignals();
    auto edge = coordinator::EdgeServer::Start(eo);
    if (!edge.ok()) return (void)Fail(edge.status());
    const std::string host = o->listen.substr(0, o->listen.rfind(':'));
    LogLine(json, "edge: " + absl::StrCat("listening on ", host, ":", (*edge)->port(),
                                o->insecure ? " (plaintext)" : " (TLS)"));
    if ((*edge)->metrics_port() > 0) {
      LogLine(json, "edge: " + absl::StrCat("metrics on http://", o->metrics.substr(0, o->metrics.rfind(':')),
                                  ":", (*edge)->metrics_port(), "/metrics"));
    }
    while (!StopRequested()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    (*edge)->Shutdown();
    const auto& m = (*edge)->metrics();
    const double rejected = m.Value("fedlora_edge_checkins_total", {"rejected"});
    const double coins = m.Value("fedlora_edge_checkins_total", {"coin"});
    LogLine(json, "edge: " + absl::StrCat("stopped; ", rejected, " check-ins rejected before a coin, ",
                                coins, " answered by a coin"));
    if (json) {
      PrintJson({{"role", "edge"},
                 {"port", (*edge)->port()},
                 {"checkins_rejected", static_cast<int64_t>(rejected)},
                 {"checkins_coin", static_cast<int64_t>(coins)}});
    }
  });
}

}  // namespace fedlora::cli
