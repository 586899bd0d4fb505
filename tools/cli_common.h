// Helpers shared by the `fedlora` subcommands.
#ifndef FEDLORA_TOOLS_CLI_COMMON_H_
#define FEDLORA_TOOLS_CLI_COMMON_H_

#include <CLI/CLI.hpp>
#include <string>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace fedlora::cli {

// The process exit code; a subcommand callback sets it (0 on success).
void SetExitCode(int code);
int ExitCode();

// Prints "fedlora: error: <message>" to stderr, sets the exit code to 1 and returns 1.
int Fail(const absl::Status& status);

// Returns the subcommand `name` of `app`, creating it (with `description`) if absent;
// lets several files add children under one parent such as `fedlora bench`.
CLI::App* GetOrAddSubcommand(CLI::App& app, const std::string& name,
                             const std::string& description);

// Prints `j` on one line to stdout.
void PrintJson(const nlohmann::json& j);

// One log line of a long-running command on stdout, "HH:MM:SS.mmm TEXT" (local time), flushed;
// nothing when `json` (the command prints one JSON object at the end instead).
void LogLine(bool json, const std::string& text);

// SIGINT and SIGTERM set a flag that StopRequested() reads: how long-running commands
// (coordinator run/edge/aggregator, cluster up) stop cleanly.
void InstallStopSignals();
bool StopRequested();

// Numeric option checks whose errors name the bound ("--threads: must be >= 0, got -1")
// rather than CLI11's range up to the largest double.
CLI::Validator AtLeast(double min);
CLI::Validator GreaterThan(double min);

// Applies the thread setting every compute command exposes as --threads (0 = default:
// the number of cores for OpenBLAS, one intra-op thread for libtorch's own kernels).
void AddThreadsOption(CLI::App* cmd, int* threads);

// The flags every serving process of a population shares (coordinator run, edge, aggregator):
// --state, --listen, --insecure, --tls-cert, --tls-key, --metrics, --json.
struct ServeFlags {
  std::string state, listen, tls_cert, tls_key, metrics;
  bool insecure = false, json = false;
};
// Adds them to `cmd` (`listen` and `metrics` keep their defaults as set in `f`).
void AddServeFlags(CLI::App* cmd, ServeFlags* f, const std::string& state_help,
                   const std::string& listen_help);
// NOT_FOUND with a hint unless `dir` holds coordinator.json or a `store` file, i.e. is a
// state folder (a mistyped --state is not mistaken for an empty single-host folder).
// `init_flags`: what the hint's `coordinator init --state DIR` needs besides, e.g. "--model DIR".
absl::Status CheckStateFolder(const std::string& dir, const std::string& init_flags);
// Prints the --insecure warning to stderr when it is set.
void WarnIfInsecure(const ServeFlags& f);
// Copies them into a server's options (state_dir, listen, insecure, tls_cert, tls_key,
// metrics_listen).
template <typename ServerOptionsT>
void ApplyServeFlags(const ServeFlags& f, ServerOptionsT* o) {
  o->state_dir = f.state;
  o->listen = f.listen;
  o->insecure = f.insecure;
  o->tls_cert = f.tls_cert;
  o->tls_key = f.tls_key;
  o->metrics_listen = f.metrics;
}

}  // namespace fedlora::cli

#endif  // FEDLORA_TOOLS_CLI_COMMON_H_
