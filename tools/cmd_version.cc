#include "cli_common.h"

namespace fedlora::cli {

void RegisterCommand_version(CLI::App& app) {
  auto* cmd = app.add_subcommand("version", "print the fedlora version");
  cmd->callback([] { std::cout << "fedlora 0.1.0\n"; });
}

}  // namespace fedlora::cli
