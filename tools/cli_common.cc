#include "cli_common.h"

#include <iostream>

namespace fedlora::cli {
namespace {
int g_exit_code = 0;
}  // namespace

void SetExitCode(int code) { g_exit_code = code; }
int ExitCode() { return g_exit_code; }

int Fail(const absl::Status& status) {
  std::cerr << "fedlora: error: " << status.message() << "\n";
  g_exit_code = 1;
  return 1;
}

CLI::App* GetOrAddSubcommand(CLI::App& app, const std::string& name,
                             const std::string& description) {
  for (CLI::App* sub : app.get_subcommands({})) {
    if (sub->get_name() == name) return sub;
  }
  CLI::App* sub = app.add_subcommand(name, description);
  sub->require_subcommand(1);
  return sub;
}

void PrintJson(const nlohmann::json& j) { std::cout << j.dump() << std::endl; }

void AddThreadsOption(CLI::App* cmd, int* threads) {
  cmd->add_option("--threads", *threads,
                  "compute threads (0 = all cores via OpenBLAS; libtorch intra-op stays at 1)")
      ->check(CLI::NonNegativeNumber);
}

}  // namespace fedlora::cli
