// A process's CPU seconds (user + system) and peak RSS from /proc/<pid>, for the benches that
// measure servers they started.
#ifndef FEDLORA_BENCH_PROC_STATS_H_
#define FEDLORA_BENCH_PROC_STATS_H_

#include <sys/types.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace fedlora::bench {

struct ProcStats {
  double cpu_seconds = 0;
  double peak_rss_mb = 0;
};

inline ProcStats ReadProc(pid_t pid) {
  ProcStats s;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content((std::istreambuf_iterator<char>(stat)), {});
  auto close = content.rfind(')');
  if (close != std::string::npos) {
    std::vector<std::string> f;
    std::string tok;
    for (char c : content.substr(close + 2)) {
      if (c == ' ') {
        f.push_back(tok);
        tok.clear();
      } else {
        tok += c;
      }
    }
    if (f.size() > 13) s.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / sysconf(_SC_CLK_TCK);
  }
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) s.peak_rss_mb = std::stod(line.substr(6)) / 1024.0;
  }
  return s;
}

// Busy and total jiffies of all cores (/proc/stat), for the machine's load while measuring.
inline std::pair<double, double> MachineJiffies() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  double user, nice, system, idle, iowait, irq, softirq, steal;
  f >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  const double busy = user + nice + system + irq + softirq + steal;
  return {busy, busy + idle + iowait};
}

// The port at the end of a "listening on HOST:PORT" log line (0 if none).
inline int PortOfLine(const std::string& line) {
  const auto colon = line.rfind(':');
  return colon == std::string::npos ? 0 : std::atoi(line.c_str() + colon + 1);
}

}  // namespace fedlora::bench

#endif  // FEDLORA_BENCH_PROC_STATS_H_
