// The device runtime as an app sees it, through the C API (libfedlora.so; docs/capi.md):
//   bench_capi --model DIR [--calls N] [--threads N] [--steps N] [--text FILE] [--json]
// Figures: the suggestion strip's latency (p50 / p95 / max over N calls of fedlora_suggest,
// k = 3) while typing the text word by word, and cold (a different text each call), the process's peak resident memory while suggesting
// and during a training step (fedlora_train, one step at a time; the kernel's high-water mark
// is reset before each phase via /proc/self/clear_refs), the time of a step, and the size of
// libfedlora.so and of every shared library the process has mapped (what an app would ship).
// Default model: the main job's compressed base, sim-out/base-model-gptq4 (`fedlora sim`).
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "fedlora.h"
#include "nlohmann/json.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double StatusMb(const char* field) {  // VmRSS, VmHWM from /proc/self/status, in MB
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field, 0) == 0) return std::stod(line.substr(line.find(':') + 1)) / 1024.0;
  }
  return 0;
}

// Resets the peak RSS to the current RSS (Linux >= 4.0); false if the kernel refuses.
bool ResetPeak() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

// Every shared object mapped into this process, with its file size.
std::map<std::string, uint64_t> MappedLibraries() {
  std::map<std::string, uint64_t> libs;
  std::ifstream in("/proc/self/maps");
  for (std::string line; std::getline(in, line);) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    if (path.find(".so") == std::string::npos) continue;
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (!ec) libs[path] = size;
  }
  return libs;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

int Die(const char* what, int status) {
  std::fprintf(stderr, "bench_capi: %s: %s: %s\n", what, fedlora_status_name(status),
               fedlora_last_error());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "sim-out/base-model-gptq4", text_file;
  int calls = 200, threads = 2, steps = 3;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--model") model = next();
    else if (a == "--calls") calls = std::stoi(next());
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--steps") steps = std::stoi(next());
    else if (a == "--text") text_file = next();
    else if (a == "--json") json = true;
    else {
      std::fprintf(stderr, "usage: bench_capi --model DIR [--calls N] [--threads N] [--steps N] "
                           "[--text FILE] [--json]\n");
      return 2;
    }
  }
  if (!fs::exists(model)) {
    std::fprintf(stderr, "bench_capi: no model at %s (hint: run the main job, `fedlora sim`, "
                         "which writes sim-out/base-model-gptq4, or pass --model DIR)\n",
                 model.c_str());
    return 2;
  }
  // The user's text: a file's lines, or built-in keyboard-like lines.
  std::vector<std::string> lines;
  if (!text_file.empty()) {
    std::ifstream in(text_file);
    for (std::string l; std::getline(in, l) && lines.size() < 400;) {
      if (l.size() > 20) lines.push_back(l.substr(0, 200));
    }
  }
  if (lines.empty()) {
    const char* base[] = {"see you at the cafe at seven tonight", "can you pick up the kids",
                          "running late, be there in ten minutes", "thanks for dinner last night",
                          "did you see the game yesterday", "let me know when you get home"};
    for (int r = 0; r < 40; ++r) for (const char* b : base) lines.push_back(b);
  }
  const std::string state = (fs::temp_directory_path() / ("bench_capi_" + std::to_string(getpid()))).string();
  fs::remove_all(state);
  const double rss_start = StatusMb("VmRSS:");

  fedlora_config cfg;
  fedlora_config_init(&cfg);
  cfg.model_dir = model.c_str();
  cfg.state_dir = state.c_str();
  cfg.threads = threads;
  fedlora_runtime* rt = nullptr;
  auto t0 = Clock::now();
  if (int s = fedlora_runtime_open(&cfg, &rt); s != FEDLORA_OK) return Die("open", s);
  const double open_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  const double rss_open = StatusMb("VmRSS:");
  for (const auto& l : lines) {
    if (int s = fedlora_observe(rt, l.c_str()); s != FEDLORA_OK) return Die("observe", s);
  }

  // Suggest, two ways. Typing: each line word by word, the strip asked for at every word
  // boundary, as a keyboard does (the runtime reuses the prefix's KV cache from the call
  // before). Cold: every call a different line cut at a word boundary (nothing to reuse).
  std::vector<std::string> typing, cold;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::vector<size_t> spaces;
    for (size_t p = 0; p < lines[i].size(); ++p) if (lines[i][p] == ' ') spaces.push_back(p);
    if (spaces.empty()) continue;
    for (size_t sp : spaces) typing.push_back(lines[i].substr(0, sp + 1));
    cold.push_back(lines[i].substr(0, spaces[(i * 7) % spaces.size()] + 1));
  }
  fedlora_suggestion strip[3];
  int n = 0;
  for (int w = 0; w < 3; ++w) fedlora_suggest(rt, cold[w % cold.size()].c_str(), 3, strip, &n);
  const bool peak_reset = ResetPeak();
  auto run = [&](const std::vector<std::string>& prefixes, std::vector<double>* ms) {
    for (int c = 0; c < calls; ++c) {
      const std::string& p = prefixes[c % prefixes.size()];
      auto s0 = Clock::now();
      if (int s = fedlora_suggest(rt, p.c_str(), 3, strip, &n); s != FEDLORA_OK) return s;
      ms->push_back(std::chrono::duration<double, std::milli>(Clock::now() - s0).count());
    }
    return static_cast<int>(FEDLORA_OK);
  };
  std::vector<double> ms, cold_ms;
  if (int s = run(typing, &ms); s != FEDLORA_OK) return Die("suggest", s);
  if (int s = run(cold, &cold_ms); s != FEDLORA_OK) return Die("suggest", s);
  const double peak_suggest = StatusMb("VmHWM:");

  // Training: one step per call (the first also builds the optimizer state; all are timed).
  fedlora_policy policy;
  fedlora_policy_init(&policy);
  policy.charging = policy.unmetered = policy.idle = 1;
  policy.battery_percent = 100;
  fedlora_budget budget;
  fedlora_budget_init(&budget);
  budget.max_steps = 1;
  fedlora_train_result tr;
  fedlora_train_result_init(&tr);
  ResetPeak();
  std::vector<double> step_s;
  for (int s = 0; s < steps; ++s) {
    if (int st = fedlora_train(rt, &budget, &policy, &tr); st != FEDLORA_OK) return Die("train", st);
    step_s.push_back(tr.seconds);
  }
  const double peak_train = StatusMb("VmHWM:");

  Dl_info info{};
  dladdr(reinterpret_cast<void*>(&fedlora_version), &info);
  const std::string self = info.dli_fname ? fs::canonical(info.dli_fname).string() : "";
  auto libs = MappedLibraries();
  uint64_t total = 0;
  std::vector<std::pair<uint64_t, std::string>> by_size;
  for (const auto& [path, size] : libs) {
    total += size;
    by_size.emplace_back(size, path);
  }
  std::sort(by_size.rbegin(), by_size.rend());
  fedlora_runtime_close(rt);
  fs::remove_all(state);

  nlohmann::json out = {
      {"model", model}, {"threads", threads}, {"calls", calls},
      {"open_ms", open_ms},
      {"suggest_ms", {{"p50", Percentile(ms, 0.5)}, {"p95", Percentile(ms, 0.95)},
                      {"max", *std::max_element(ms.begin(), ms.end())}}},
      {"suggest_cold_ms", {{"p50", Percentile(cold_ms, 0.5)}, {"p95", Percentile(cold_ms, 0.95)},
                           {"max", *std::max_element(cold_ms.begin(), cold_ms.end())}}},
      {"train_step_s", step_s},
      {"rss_mb", {{"process_start", rss_start}, {"after_open", rss_open}}},
      {"peak_rss_mb", {{"suggest", peak_suggest}, {"train_step", peak_train},
                       {"reset_per_phase", peak_reset}}},
      {"libfedlora_mb", libs.count(self) ? libs[self] / 1e6 : 0.0},
      {"mapped_libraries", libs.size()},
      {"mapped_libraries_mb", total / 1e6}};
  nlohmann::json top = nlohmann::json::array();
  for (size_t i = 0; i < std::min<size_t>(8, by_size.size()); ++i) {
    top.push_back({{"library", fs::path(by_size[i].second).filename().string()},
                   {"mb", by_size[i].first / 1e6}});
  }
  out["largest_libraries"] = top;
  if (json) {
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf("model %s, %d threads\n", model.c_str(), threads);
  std::printf("open: %.0f ms; RSS %.1f MB at start, %.1f MB after open\n", open_ms, rss_start,
              rss_open);
  std::printf("suggest while typing (k=3, %d calls): p50 %.2f ms, p95 %.2f ms, max %.2f ms\n",
              calls, Percentile(ms, 0.5), Percentile(ms, 0.95),
              *std::max_element(ms.begin(), ms.end()));
  std::printf("suggest cold (a new text each call): p50 %.2f ms, p95 %.2f ms, max %.2f ms; "
              "peak RSS of both %.1f MB\n",
              Percentile(cold_ms, 0.5), Percentile(cold_ms, 0.95),
              *std::max_element(cold_ms.begin(), cold_ms.end()), peak_suggest);
  std::printf("train step:");
  for (double s : step_s) std::printf(" %.3f s", s);
  std::printf("; peak RSS %.1f MB%s\n", peak_train, peak_reset ? "" : " (peak not reset: whole process)");
  std::printf("libfedlora.so %.1f MB; %zu shared libraries mapped, %.1f MB in all; largest:\n",
              libs.count(self) ? libs[self] / 1e6 : 0.0, libs.size(), total / 1e6);
  for (const auto& t : top) {
    std::printf("  %-40s %8.1f MB\n", t["library"].get<std::string>().c_str(), t["mb"].get<double>());
  }
  return 0;
}
