// fedlora: privacy-first federated LoRA personalization. One binary, many subcommands.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>

#include "cli_common.h"
#include "fedlora/model/float_gemm.h"
#include "fedlora/model/threads.h"
#include "exception_line.h"
#include "help_conventions.h"
#include "suggest_option.h"

namespace fedlora::cli {
void RegisterAllCommands(CLI::App& app);
}

namespace {

std::terminate_handler g_default_terminate = nullptr;

// An exception that escapes a worker thread ends in std::terminate: report it as one line and
// exit 1 like any other error. Without an exception (a real bug) keep the default abort.
[[noreturn]] void OnTerminate() {
  if (std::exception_ptr e = std::current_exception()) {
    std::fflush(stdout);
    std::cerr << fedlora::cli::ExceptionLine(e) << std::endl;
    std::_Exit(1);
  }
  if (g_default_terminate != nullptr) g_default_terminate();
  std::abort();
}

}  // namespace

int main(int argc, char** argv) {
  g_default_terminate = std::set_terminate(OnTerminate);
  fedlora::model::SelectBlasCore();  // before any matrix product (docs/device.md, "Threads")
  // Where the frozen products run (model/float_gemm.h): a misspelt value is refused before any
  // work, not at the first product.
  if (const char* g = std::getenv("FEDLORA_FLOAT_GEMM")) {
    const auto mode = fedlora::model::ParseFloatGemm(g);
    if (!mode.ok()) {
      std::cerr << "fedlora: error: " << mode.status().message() << std::endl;
      return 2;
    }
  }
  CLI::App app{"fedlora: federated LoRA personalization of Llama-family models"};
  try {
    app.require_subcommand(1);
    fedlora::cli::RegisterAllCommands(app);
    fedlora::cli::ApplyHelpConventions(&app);
    app.parse(argc, argv);
  } catch (const CLI::ExtrasError& e) {
    const std::string hint = fedlora::cli::SuggestForExtras(app, e.what());
    if (hint.empty()) return app.exit(e);
    std::cerr << hint;
    return e.get_exit_code();
  } catch (const CLI::RequiredError& e) {
    const std::string hint = fedlora::cli::SuggestForMissing(app);
    if (hint.empty()) return app.exit(e);
    std::cerr << hint;
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (...) {
    // Commands report errors as absl::Status; anything thrown (c10::Error from libtorch,
    // std::bad_alloc, ...) ends here as one line, never as an abort with a backtrace.
    std::fflush(stdout);
    std::cerr << fedlora::cli::ExceptionLine(std::current_exception()) << std::endl;
    return 1;
  }
  return fedlora::cli::ExitCode();
}
