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
    ServeFlags serve{"", "127.0.0.1:50061", "", "", "127.0.0.1:9465"};
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
  AddServeFlags(cmd, &o->serve, "a multi-host state folder (`coordinator init --store`)",
                "HOST:PORT for devices (port 0 picks one)");
  cmd->callback([o] {
    const bool json = o->serve.json;
    coordinator::EdgeServerOptions eo;
    ApplyServeFlags(o->serve, &eo);
    eo.rounds.log = [json](const std::string& line) { LogLine(json, "edge: " + line); };
    if (absl::Status s = CheckStateFolder(o->serve.state, "--store CONNINFO --model DIR");
        !s.ok()) {
      return (void)Fail(s);
    }
    WarnIfInsecure(o->serve);
    InstallStopSignals();
    auto edge = coordinator::EdgeServer::Start(eo);
    if (!edge.ok()) return (void)Fail(edge.status());
    const std::string host = o->serve.listen.substr(0, o->serve.listen.rfind(':'));
    LogLine(json, "edge: " + absl::StrCat("listening on ", host, ":", (*edge)->port(),
                                          o->serve.insecure ? " (plaintext)" : " (TLS)"));
    if ((*edge)->metrics_port() > 0) {
      LogLine(json, "edge: " + absl::StrCat("metrics on http://",
                                            o->serve.metrics.substr(0, o->serve.metrics.rfind(':')),
                                            ":", (*edge)->metrics_port(), "/metrics"));
    }
    while (!StopRequested()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    (*edge)->Shutdown();
    const auto& m = (*edge)->metrics();
    const double rejected = m.Value("fedlora_edge_checkins_total", {"rejected"});
    const double coins = m.Value("fedlora_edge_checkins_total", {"coin"});
    LogLine(json,
            "edge: " + absl::StrCat("stopped; ", rejected, " check-ins rejected before a coin, ",
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
