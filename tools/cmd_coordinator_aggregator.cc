// fedlora coordinator aggregator --state DIR [--listen HOST:PORT] [--advertise HOST:PORT]
// [--metrics HOST:PORT] [--insecure] [--json]: an aggregator process of a multi-host
// population (coordinator/aggregator_server.h).
#include <csignal>
#include <cstdio>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli_common.h"
#include "fedlora/coordinator/aggregator_server.h"

namespace fedlora::cli {
void RegisterCommand_coordinator_aggregator(CLI::App& app) {
  struct Opts {
    ServeFlags serve{"", "127.0.0.1:50071", "", "", "127.0.0.1:9475"};
    std::string advertise;
  };
  auto o = std::make_shared<Opts>();
  auto* parent = GetOrAddSubcommand(app, "coordinator",
                                    "the federated coordinator: init, run, status, tokens, revoke");
  auto* cmd = parent->add_subcommand(
      "aggregator", "multi-host: run the secure aggregation of the shards the leader hands out");
  cmd->footer(
      "Examples:\n"
      "  fedlora coordinator aggregator --state coord --listen 0.0.0.0:50071 \\\n"
      "      --advertise agg1.example.org:50071\n"
      "Registers in the population's database (heartbeat every second); the leader hands the\n"
      "shards of sharded rounds (max_shard_size) round robin to the live aggregators, and each\n"
      "device's task names its aggregator. Sees only each shard's sum, as the leader would.\n"
      "Stops on SIGINT/SIGTERM (unregisters; shards running here are dropped).");
  AddServeFlags(cmd, &o->serve, "a multi-host state folder (`coordinator init --store`)",
                "HOST:PORT for devices and the leader (port 0 picks one)");
  cmd->add_option("--advertise", o->advertise,
                  "HOST:PORT devices and the leader dial (default: from --listen)");
  cmd->callback([o] {
    const bool json = o->serve.json;
    coordinator::AggregatorServerOptions ao;
    ApplyServeFlags(o->serve, &ao);
    ao.advertise = o->advertise;
    if (absl::Status s = CheckStateFolder(o->serve.state, "--store CONNINFO --model DIR");
        !s.ok()) {
      return (void)Fail(s);
    }
    WarnIfInsecure(o->serve);
    InstallStopSignals();
    auto agg = coordinator::AggregatorServer::Start(ao);
    if (!agg.ok()) return (void)Fail(agg.status());
    LogLine(json, "aggregator: " + absl::StrCat("listening on port ", (*agg)->port(),
                                                ", registered as ", (*agg)->address(),
                                                o->serve.insecure ? " (plaintext)" : " (TLS)"));
    if ((*agg)->metrics_port() > 0) {
      LogLine(json,
              "aggregator: " + absl::StrCat("metrics on http://",
                                            o->serve.metrics.substr(0, o->serve.metrics.rfind(':')),
                                            ":", (*agg)->metrics_port(), "/metrics"));
    }
    while (!StopRequested()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    (*agg)->Shutdown();
    const auto& m = (*agg)->metrics();
    const double summed = m.Value("fedlora_aggregator_shards_total", {"summed"});
    const double dropped = m.Value("fedlora_aggregator_shards_total", {"dropped"});
    const double refused = m.Value("fedlora_aggregator_shards_total", {"refused"});
    const double forged = m.Value("fedlora_aggregator_shards_total", {"unauthenticated"});
    LogLine(json,
            "aggregator: " + absl::StrCat("stopped; shards summed ", summed, ", dropped ", dropped,
                                          ", refused ", refused, ", unauthenticated ", forged));
    if (json) {
      PrintJson({{"role", "aggregator"},
                 {"port", (*agg)->port()},
                 {"address", (*agg)->address()},
                 {"shards_summed", static_cast<int64_t>(summed)},
                 {"shards_dropped", static_cast<int64_t>(dropped)},
                 {"shards_refused", static_cast<int64_t>(refused)},
                 {"shards_unauthenticated", static_cast<int64_t>(forged)}});
    }
  });
}

}  // namespace fedlora::cli
