// Where the time of a libtorch workload goes, per operator (libtorch's legacy profiler: self
// time = time inside an op minus the ops it called). Used by bench_model --profile.
#ifndef FEDLORA_BENCH_OP_PROFILE_H_
#define FEDLORA_BENCH_OP_PROFILE_H_

#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace fedlora::bench {

struct OpTime {
  std::string name;
  double self_ms = 0;
  int64_t calls = 0;
};

struct OpProfile {
  double wall_ms = 0;
  std::vector<OpTime> ops;  // self time, largest first
};

// Matrix products (BLAS time) as opposed to everything else.
inline bool IsGemm(const std::string& op) {
  return op == "aten::mm" || op == "aten::addmm" || op == "aten::bmm" ||
         op == "aten::baddbmm" || op == "aten::_mkldnn_matmul";
}

inline OpProfile ProfileOps(const std::function<void()>& fn) {
  namespace prof = torch::autograd::profiler;
  prof::enableProfilerLegacy(
      torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU));
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  const double wall =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  prof::thread_event_lists lists = prof::disableProfilerLegacy();
  std::map<std::string, OpTime> by_name;
  for (const auto& events : lists) {
    struct Open {
      const prof::LegacyEvent* push;
      double children_us;
    };
    std::vector<Open> stack;
    for (const auto& e : events) {
      if (e.kind() == prof::EventKind::PushRange) {
        stack.push_back({&e, 0});
      } else if (e.kind() == prof::EventKind::PopRange && !stack.empty()) {
        const Open open = stack.back();
        stack.pop_back();
        const double us = open.push->cpuElapsedUs(e);
        OpTime& t = by_name[open.push->name()];
        t.name = open.push->name();
        t.self_ms += (us - open.children_us) / 1000.0;
        ++t.calls;
        if (!stack.empty()) stack.back().children_us += us;
      }
    }
  }
  OpProfile p;
  p.wall_ms = wall;
  for (auto& [name, t] : by_name) p.ops.push_back(t);
  std::sort(p.ops.begin(), p.ops.end(),
            [](const OpTime& a, const OpTime& b) { return a.self_ms > b.self_ms; });
  return p;
}

// {"wall_ms", "gemm_share", "ops": [{"op", "self_ms", "share", "calls"}...]} of the top n.
inline nlohmann::json ProfileJson(const OpProfile& p, size_t n) {
  double gemm = 0;
  for (const auto& o : p.ops) {
    if (IsGemm(o.name)) gemm += o.self_ms;
  }
  nlohmann::json ops = nlohmann::json::array();
  for (size_t i = 0; i < p.ops.size() && i < n; ++i) {
    ops.push_back({{"op", p.ops[i].name},
                   {"self_ms", p.ops[i].self_ms},
                   {"share", p.ops[i].self_ms / p.wall_ms},
                   {"calls", p.ops[i].calls}});
  }
  return {{"wall_ms", p.wall_ms}, {"gemm_share", gemm / p.wall_ms}, {"ops", ops}};
}

}  // namespace fedlora::bench

#endif  // FEDLORA_BENCH_OP_PROFILE_H_
