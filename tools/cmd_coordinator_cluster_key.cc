// fedlora coordinator cluster-key --state DIR [--json]: adds the cluster key (the leader's
// credential towards its aggregators, coordinator/cluster_key.h) to a multi-host state folder
// made before leaders authenticated RunShard; `coordinator init --store` makes one itself.
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "cli_common.h"
#include "fedlora/coordinator/cluster_key.h"
#include "fedlora/coordinator/state_folder.h"

namespace fedlora::cli {

void RegisterCommand_coordinator_cluster_key(CLI::App& app) {
  struct Opts {
    std::string state;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* parent = GetOrAddSubcommand(app, "coordinator",
                                    "the federated coordinator: init, run, status, tokens, revoke");
  auto* cmd = parent->add_subcommand(
      "cluster-key",
      "multi-host: add the leader's credential for aggregators to a folder made before it");
  cmd->footer(
      "Examples:\n"
      "  fedlora coordinator cluster-key --state coord\n"
      "Writes DIR/cluster.key (32 random bytes as hex, mode 0600) once; refuses to replace one.\n"
      "Run it on one host, then copy the file into the state folder of every coordinator,\n"
      "aggregator and edge host of the population and restart them. Never give it to a device.");
  cmd->add_option("--state", o->state, "a multi-host state folder (`coordinator init --store`)")
      ->required();
  cmd->add_flag("--json", o->json, "print one JSON summary");
  cmd->callback([o] {
    if (absl::Status s = CheckStateFolder(o->state, "--store CONNINFO --model DIR"); !s.ok()) {
      return (void)Fail(s);
    }
    auto conninfo = coordinator::StateStoreConninfo(o->state);
    if (!conninfo.ok()) return (void)Fail(conninfo.status());
    if (conninfo->empty()) {
      return (void)Fail(absl::FailedPreconditionError(
          absl::StrCat(o->state,
                       " is a single-host state folder (SQLite): it has no aggregators and needs "
                       "no cluster key")));
    }
    if (absl::Status s = coordinator::CreateClusterKey(o->state); !s.ok()) return (void)Fail(s);
    const std::string path = o->state + "/" + coordinator::kClusterKeyFile;
    if (o->json) return PrintJson({{"cluster_key_file", path}, {"mode", "0600"}});
    std::printf(
        "wrote %s (mode 0600)\nnext: copy it into the state folder of every coordinator, "
        "aggregator and edge host of the population, then restart them\n",
        path.c_str());
  });
}

}  // namespace fedlora::cli
