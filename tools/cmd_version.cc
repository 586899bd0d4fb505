#include "cli_common.h"
#include "fedlora/coordinator/fault_injection.h"
#include "fedlora/coordinator/store.h"

namespace fedlora::cli {

namespace {
constexpr char kVersion[] = "fedlora " FEDLORA_VERSION_STRING;  // project(VERSION)
// The version, whether this build has the coordinator's fault injection compiled in, and
// whether it has the PostgreSQL store (multi-host mode; built when CMake finds libpq).
std::string VersionLine() {
  return std::string(kVersion) + " (" + coordinator::FaultInjectionNote() +
         "; PostgreSQL store: " + (coordinator::PostgresSupported() ? "on" : "off") + ")";
}
}  // namespace

void RegisterCommand_version(CLI::App& app) {
  auto* cmd = app.add_subcommand("version", "print the fedlora version");
  cmd->callback([] { std::cout << VersionLine() << "\n"; });
  // `fedlora --version` prints the same line.
  app.set_version_flag("--version", VersionLine(), "print the fedlora version and exit");
}

}  // namespace fedlora::cli
