#include "cli_common.h"

namespace fedlora::cli {

namespace {
constexpr char kVersionLine[] = "fedlora 0.1.0";
}  // namespace

void RegisterCommand_version(CLI::App& app) {
  auto* cmd = app.add_subcommand("version", "print the fedlora version");
  cmd->callback([] { std::cout << kVersionLine << "\n"; });
  // `fedlora --version` prints the same line.
  app.set_version_flag("--version", kVersionLine, "print the fedlora version and exit");
}

}  // namespace fedlora::cli
