// fedlora: privacy-first federated LoRA personalization. One binary, many subcommands.
#include <CLI/CLI.hpp>

#include "cli_common.h"

namespace fedlora::cli {
void RegisterAllCommands(CLI::App& app);
}

int main(int argc, char** argv) {
  CLI::App app{"fedlora: federated LoRA personalization of Llama-family models"};
  app.require_subcommand(1);
  fedlora::cli::RegisterAllCommands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return fedlora::cli::ExitCode();
}
