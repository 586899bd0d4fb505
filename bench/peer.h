// Runs the per-client PyTorch loop a Flower user would run
// (../shared/peers/pytorch_per_client.py, Debian's python3-torch) inside a benchmark, so both
// are measured in the same invocation on the same machine state.
#ifndef FEDLORA_BENCH_PEER_H_
#define FEDLORA_BENCH_PEER_H_

#include <cstdio>
#include <filesystem>
#include <string>

#include "nlohmann/json.hpp"

namespace fedlora::bench {

// `args` are the script's flags; `env` is prepended to the command (e.g. "env -u VAR").
// Returns its JSON line, or {"skipped": why}.
inline nlohmann::json RunPytorchPeer(const std::string& args, const std::string& env = "") {
  std::string script = std::string(FEDLORA_SHARED_DIR) + "/peers/pytorch_per_client.py";
  if (!std::filesystem::exists(script) || !std::filesystem::exists("/usr/bin/python3")) {
    return {{"skipped", "peer script or /usr/bin/python3 missing"}};
  }
  std::string cmd = env + (env.empty() ? "" : " ") + "/usr/bin/python3 " + script + " " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return {{"skipped", "popen failed"}};
  std::string out;
  char buf[4096];
  while (fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  int rc = pclose(p);
  auto j = nlohmann::json::parse(out, nullptr, false);
  if (rc != 0 || j.is_discarded())
    return {{"skipped", "peer failed (is python3-torch installed?)"}};
  return j;
}

}  // namespace fedlora::bench

#endif  // FEDLORA_BENCH_PEER_H_
