// fedlora cluster up|down --dir DIR: a laptop rehearsal of multi-host mode, every part its own
// process (PostgreSQL, a leader and standbys, edges, HAProxy in front; coordinator/cluster.h).
#include <unistd.h>

#include <climits>
#include <csignal>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli_common.h"
#include "fedlora/coordinator/cluster.h"

namespace fedlora::cli {
namespace {

std::string SelfBinary() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, n) : "fedlora";
}

}  // namespace

void RegisterCommand_cluster(CLI::App& app) {
  struct Opts {
    coordinator::ClusterSpec spec;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* parent = GetOrAddSubcommand(
      app, "cluster",
      "a local multi-host rehearsal: PostgreSQL, leader + standbys, edges, aggregators, HAProxy");
  auto* up = parent->add_subcommand(
      "up",
      "start PostgreSQL, `coordinator init --store`, a leader, standbys, edges, aggregators and "
      "HAProxy, each its own process; runs until SIGINT/SIGTERM");
  up->footer(
      "Examples:\n"
      "  fedlora cluster up --dir /tmp/rehearsal --model models/tiny --shard-size 100\n"
      "  fedlora device enroll --state phone --token TOKEN --coordinator 127.0.0.1:50051 \\\n"
      "      --ca /tmp/rehearsal/state/tls/ca.pem --server-name localhost\n"
      "  kill -9 <the leader's pid from cluster.json>   # a standby takes over within the ttl\n"
      "  kill -9 <an edge's pid from cluster.json>      # devices retry on the other edge\n"
      "  kill -9 <an aggregator's pid>                  # only its shards are dropped\n"
      "  fedlora cluster down --dir /tmp/rehearsal\n"
      "Needs postgresql-15 and haproxy (`bash scripts/setup.sh test`). As root, PostgreSQL runs\n"
      "as nobody, which must be able to reach DIR (e.g. under /tmp). A second `up` on the same\n"
      "DIR reuses its database and state folder. The aggregators run shards only when rounds\n"
      "are sharded: --shard-size (or --init-arg=--max-shard-size) on the first `up`.");
  up->add_option("--dir", o->spec.dir, "the cluster's folder (created)")->required();
  up->add_option("--model", o->spec.model, "base model folder for `coordinator init`")->required();
  up->add_option("--standbys", o->spec.standbys, "warm standby coordinators")
      ->capture_default_str()
      ->check(AtLeast(0));
  up->add_option("--edges", o->spec.edges,
                 "edge processes behind HAProxy (devices -> HAProxy -> edge -> leader); 0 puts "
                 "HAProxy in front of the coordinators")
      ->capture_default_str()
      ->check(AtLeast(0));
  up->add_option("--aggregators", o->spec.aggregators,
                 "`coordinator aggregator` processes: each runs the secure aggregation of the "
                 "shards the leader hands it (sharded rounds only); 0: the leader runs them")
      ->capture_default_str()
      ->check(AtLeast(0));
  up->add_option("--shard-size", o->spec.shard_size,
                 "passed to `coordinator init --max-shard-size` on the first `up`: rounds of n "
                 "devices run as ceil(n / S) sessions (more noise per device: each shard's "
                 "minimum); 0: one session per round")
      ->capture_default_str()
      ->check(AtLeast(0));
  up->add_option("--port", o->spec.port, "HAProxy's port on 127.0.0.1: the devices' endpoint")
      ->capture_default_str()
      ->check(CLI::Range(1, 65535));
  up->add_option("--lease-ttl", o->spec.lease_ttl_s,
                 "seconds a leader's lease lasts unrenewed (failover time is about this)")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 3600.0));
  up->add_option("--init-arg", o->spec.init_args,
                 "one more `coordinator init` flag or value (repeat; first `up` only), e.g. "
                 "--init-arg=--rounds --init-arg=5");
  up->add_flag("--json", o->json, "print one JSON summary once everything runs, no log");
  up->callback([o] {
    o->spec.fedlora_binary = SelfBinary();
    auto plan = coordinator::PlanCluster(o->spec);
    if (!plan.ok()) return (void)Fail(plan.status());
    InstallStopSignals();
    const bool json = o->json;
    auto log = [json](const std::string& l) { LogLine(json, l); };
    absl::Status s = coordinator::RunCluster(
        *plan, [] { return StopRequested(); },
        [json, log](const nlohmann::json& summary) {
          if (json) return PrintJson(summary);
          log(absl::StrCat("devices connect to ", summary["endpoint"].get<std::string>(),
                           " with --ca ", summary["ca"].get<std::string>(),
                           " --server-name localhost; enrolment tokens in ",
                           summary["tokens_file"].get<std::string>()));
          log(absl::StrCat("HAProxy config ", summary["haproxy_config"].get<std::string>(),
                           "; processes in ", summary["dir"].get<std::string>(),
                           "/cluster.json; Ctrl-C or `fedlora cluster down --dir ",
                           summary["dir"].get<std::string>(), "` stops them"));
        },
        log);
    if (!s.ok()) return (void)Fail(s);
    log("cluster stopped");
  });

  auto* down = parent->add_subcommand("down", "stop the cluster `cluster up` runs in DIR");
  down->footer("Example:\n  fedlora cluster down --dir /tmp/rehearsal");
  down->add_option("--dir", o->spec.dir, "the cluster's folder")->required();
  down->add_flag("--json", o->json, "print one JSON object");
  down->callback([o] {
    auto r = coordinator::StopCluster(o->spec.dir);
    if (!r.ok()) return (void)Fail(r.status());
    if (o->json) return PrintJson(*r);
    for (const auto& p : (*r)["stopped"]) {
      std::printf("stopped %s (pid %d)\n", p["name"].get<std::string>().c_str(),
                  p["pid"].get<int>());
    }
    if ((*r)["stopped"].empty()) std::printf("nothing was running in %s\n", o->spec.dir.c_str());
  });
}

}  // namespace fedlora::cli
