#include "cli_common.h"

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fedlora::cli {
namespace {

volatile std::sig_atomic_t g_stop_requested = 0;
void OnStopSignal(int) { g_stop_requested = 1; }
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
      ->check(AtLeast(0));
}

namespace {
CLI::Validator Bound(double min, bool strict) {
  const std::string bound = (strict ? "> " : ">= ") + absl::StrFormat("%g", min);
  return CLI::Validator(
      [min, strict, bound](std::string& in) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(in, v)) return "must be a number, got '" + in + "'";
        if (strict ? v > min : v >= min) return std::string();
        return "must be " + bound + ", got " + in;
      },
      bound);
}
}  // namespace

CLI::Validator AtLeast(double min) { return Bound(min, /*strict=*/false); }
CLI::Validator GreaterThan(double min) { return Bound(min, /*strict=*/true); }

void LogLine(bool json, const std::string& text) {
  if (json) return;
  std::printf("%s %s\n", absl::FormatTime("%H:%M:%E3S", absl::Now(), absl::LocalTimeZone()).c_str(),
              text.c_str());
  std::fflush(stdout);
}

void InstallStopSignals() {
  std::signal(SIGINT, OnStopSignal);
  std::signal(SIGTERM, OnStopSignal);
}

bool StopRequested() { return g_stop_requested != 0; }

void AddServeFlags(CLI::App* cmd, ServeFlags* f, const std::string& state_help,
                   const std::string& listen_help) {
  cmd->add_option("--state", f->state, state_help)->required();
  cmd->add_option("--listen", f->listen, listen_help)->capture_default_str();
  cmd->add_flag("--insecure", f->insecure, "plaintext gRPC (loopback only; for tests)");
  cmd->add_option("--tls-cert", f->tls_cert,
                  "server certificate PEM (default <state>/tls/server.pem)");
  cmd->add_option("--tls-key", f->tls_key, "server key PEM (default <state>/tls/server.key)");
  cmd->add_option("--metrics", f->metrics,
                  "HOST:PORT of the Prometheus /metrics endpoint ('' = off)")
      ->capture_default_str();
  cmd->add_flag("--json", f->json, "print one JSON summary at exit instead of the log");
}

absl::Status CheckStateFolder(const std::string& dir, const std::string& init_flags) {
  std::error_code ec;
  const std::filesystem::path d(dir);
  // coordinator.json (every folder `init` makes), or `store`: what names a multi-host
  // population's database, and all an edge or aggregator reads of the folder besides TLS.
  if (std::filesystem::exists(d / "coordinator.json", ec) ||
      std::filesystem::exists(d / "store", ec)) {
    return absl::OkStatus();
  }
  return absl::NotFoundError(absl::StrCat(dir,
                                          " is not a coordinator state folder: it has no "
                                          "coordinator.json (hint: check the path; `fedlora "
                                          "coordinator init --state ",
                                          dir, " ", init_flags, "` makes one)"));
}

void WarnIfInsecure(const ServeFlags& f) {
  if (!f.insecure) return;
  std::fprintf(stderr,
               "fedlora: warning: --insecure: plaintext gRPC on %s; anyone on this host can read "
               "the protocol (loopback only; never in production)\n",
               f.listen.c_str());
}

}  // namespace fedlora::cli
