#include "fedlora/coordinator/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fedlora::coordinator {
namespace {

[[noreturn]] void Fatal(const std::string& message) {
  std::fprintf(stderr, "fedlora metrics: fatal (programmer error): %s\n", message.c_str());
  std::abort();
}

bool IsMetricName(const std::string& s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool IsLabelName(const std::string& s) {
  if (s.empty() || s.rfind("__", 0) == 0) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// Shortest decimal that parses back to exactly `v`; integers without exponent up to 2^53.
std::string FormatNumber(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.0f", v);
    return buf;
  }
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

// HELP text: backslash and newline escaped. Label values additionally escape the double quote.
std::string Escape(const std::string& s, bool quote) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

// `{a="x",b="y"}` (with `extra` appended as the last pair), or "" when there are no pairs.
std::string LabelSet(const std::vector<std::string>& names, const std::vector<std::string>& values,
                     const std::string& extra = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    absl::StrAppend(&out, out.empty() ? "" : ",", names[i], "=\"", Escape(values[i], true), "\"");
  }
  if (!extra.empty()) absl::StrAppend(&out, out.empty() ? "" : ",", extra);
  return out.empty() ? out : absl::StrCat("{", out, "}");
}

}  // namespace

struct MetricsRegistry::Family {
  struct Series {
    double value = 0;               // counter, gauge
    std::vector<uint64_t> buckets;  // histogram: per bucket (not cumulative), last is +Inf
    double sum = 0;
    uint64_t count = 0;
  };

  Type type;
  std::string help;
  std::vector<std::string> label_names;
  std::vector<double> upper_bounds;  // histogram, without +Inf

  mutable absl::Mutex mu;
  std::map<std::vector<std::string>, Series> series ABSL_GUARDED_BY(mu);

  // The series for `values`, created on first use (the only allocating path).
  Series& Get(const std::vector<std::string>& values) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto it = series.find(values);
    if (it != series.end()) return it->second;
    Series& s = series[values];
    if (type == Type::kHistogram) s.buckets.assign(upper_bounds.size() + 1, 0);
    return s;
  }
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

void MetricsRegistry::Define(const std::string& name, const std::string& help, Type type,
                             std::vector<std::string> label_names,
                             std::vector<double> upper_bounds) {
  if (!IsMetricName(name)) {
    Fatal(absl::StrCat("metric name \"", name, "\" does not match [a-zA-Z_:][a-zA-Z0-9_:]*"));
  }
  for (size_t i = 0; i < label_names.size(); ++i) {
    const std::string& label = label_names[i];
    if (!IsLabelName(label)) {
      Fatal(absl::StrCat("metric ", name, ": label name \"", label,
                         "\" does not match [a-zA-Z_][a-zA-Z0-9_]* (or starts with __)"));
    }
    if (type == Type::kHistogram && label == "le") {
      Fatal(absl::StrCat("histogram ", name, ": label name \"le\" is reserved for buckets"));
    }
    if (std::find(label_names.begin(), label_names.begin() + i, label) != label_names.begin() + i) {
      Fatal(absl::StrCat("metric ", name, ": label name \"", label, "\" given twice"));
    }
  }
  if (type == Type::kHistogram) {
    if (!upper_bounds.empty() && upper_bounds.back() == std::numeric_limits<double>::infinity()) {
      upper_bounds.pop_back();
    }
    for (size_t i = 0; i < upper_bounds.size(); ++i) {
      if (!std::isfinite(upper_bounds[i]) || (i > 0 && !(upper_bounds[i] > upper_bounds[i - 1]))) {
        Fatal(absl::StrCat("histogram ", name,
                           ": bucket bounds must be finite and strictly increasing, got [",
                           absl::StrJoin(upper_bounds, ", "), "]"));
      }
    }
  }

  absl::MutexLock lock(&mu_);
  auto it = families_.find(name);
  if (it != families_.end()) {
    const Family& f = *it->second;
    if (f.type != type || f.help != help || f.label_names != label_names ||
        f.upper_bounds != upper_bounds) {
      Fatal(
          absl::StrCat("metric ", name, " defined twice with different type/help/labels/buckets"));
    }
    return;
  }
  auto family = std::make_unique<Family>();
  family->type = type;
  family->help = help;
  family->label_names = std::move(label_names);
  family->upper_bounds = std::move(upper_bounds);
  if (family->label_names.empty()) {
    absl::MutexLock family_lock(&family->mu);
    family->Get({});
  }
  families_.emplace(name, std::move(family));
}

void MetricsRegistry::DefineCounter(const std::string& name, const std::string& help,
                                    std::vector<std::string> label_names) {
  Define(name, help, Type::kCounter, std::move(label_names), {});
}

void MetricsRegistry::DefineGauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names) {
  Define(name, help, Type::kGauge, std::move(label_names), {});
}

void MetricsRegistry::DefineHistogram(const std::string& name, const std::string& help,
                                      std::vector<double> upper_bounds,
                                      std::vector<std::string> label_names) {
  Define(name, help, Type::kHistogram, std::move(label_names), std::move(upper_bounds));
}

MetricsRegistry::Family* MetricsRegistry::Find(const std::string& name,
                                               const std::vector<std::string>& label_values,
                                               const char* op) const {
  Family* family = nullptr;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = families_.find(name);
    if (it == families_.end()) Fatal(absl::StrCat(op, "(", name, "): metric is not defined"));
    family = it->second.get();
  }
  if (label_values.size() != family->label_names.size()) {
    Fatal(absl::StrCat(op, "(", name, "): ", label_values.size(), " label values for labels [",
                       absl::StrJoin(family->label_names, ", "), "]"));
  }
  return family;
}

void MetricsRegistry::Increment(const std::string& name,
                                const std::vector<std::string>& label_values, double by) {
  Family* family = Find(name, label_values, "Increment");
  if (family->type == Type::kHistogram) {
    Fatal(absl::StrCat("Increment(", name, "): histogram; use Observe"));
  }
  if (family->type == Type::kCounter && !(by >= 0)) {
    Fatal(absl::StrCat("Increment(", name, "): counter increment ", by, " is negative or NaN"));
  }
  absl::MutexLock lock(&family->mu);
  family->Get(label_values).value += by;
}

void MetricsRegistry::Set(const std::string& name, double value,
                          const std::vector<std::string>& label_values) {
  Family* family = Find(name, label_values, "Set");
  if (family->type != Type::kGauge) Fatal(absl::StrCat("Set(", name, "): not a gauge"));
  absl::MutexLock lock(&family->mu);
  family->Get(label_values).value = value;
}

void MetricsRegistry::Observe(const std::string& name, double value,
                              const std::vector<std::string>& label_values) {
  Family* family = Find(name, label_values, "Observe");
  if (family->type != Type::kHistogram) {
    Fatal(absl::StrCat("Observe(", name, "): not a histogram"));
  }
  const std::vector<double>& bounds = family->upper_bounds;
  const size_t bucket =
      std::isnan(value) ? bounds.size()
                        : std::lower_bound(bounds.begin(), bounds.end(), value) - bounds.begin();
  absl::MutexLock lock(&family->mu);
  Family::Series& s = family->Get(label_values);
  ++s.buckets[bucket];
  s.sum += value;
  ++s.count;
}

double MetricsRegistry::Value(const std::string& name,
                              const std::vector<std::string>& label_values) const {
  const Family* family = Find(name, label_values, "Value");
  if (family->type == Type::kHistogram) {
    Fatal(absl::StrCat("Value(", name, "): histogram has no single value"));
  }
  absl::MutexLock lock(&family->mu);
  auto it = family->series.find(label_values);
  return it == family->series.end() ? 0 : it->second.value;
}

std::string MetricsRegistry::RenderPrometheus() const {
  std::string out;
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& [name, family] : families_) {
    const char* type = family->type == Type::kCounter ? "counter"
                       : family->type == Type::kGauge ? "gauge"
                                                      : "histogram";
    absl::StrAppend(&out, "# HELP ", name, " ", Escape(family->help, false), "\n");
    absl::StrAppend(&out, "# TYPE ", name, " ", type, "\n");
    absl::MutexLock family_lock(&family->mu);
    for (const auto& [values, s] : family->series) {
      if (family->type != Type::kHistogram) {
        absl::StrAppend(&out, name, LabelSet(family->label_names, values), " ",
                        FormatNumber(s.value), "\n");
        continue;
      }
      uint64_t cumulative = 0;
      for (size_t b = 0; b < s.buckets.size(); ++b) {
        cumulative += s.buckets[b];
        const std::string le = b < family->upper_bounds.size()
                                   ? FormatNumber(family->upper_bounds[b])
                                   : std::string("+Inf");
        absl::StrAppend(&out, name, "_bucket",
                        LabelSet(family->label_names, values, absl::StrCat("le=\"", le, "\"")), " ",
                        cumulative, "\n");
      }
      const std::string labels = LabelSet(family->label_names, values);
      absl::StrAppend(&out, name, "_sum", labels, " ", FormatNumber(s.sum), "\n");
      absl::StrAppend(&out, name, "_count", labels, " ", s.count, "\n");
    }
  }
  return out;
}

void DefineCoordinatorMetrics(MetricsRegistry& registry) {
  registry.DefineCounter(kMetricRoundsTotal, "Rounds finished, by outcome (committed or aborted).",
                         {"outcome"});
  registry.Increment(kMetricRoundsTotal, {"committed"}, 0);
  registry.Increment(kMetricRoundsTotal, {"aborted"}, 0);
  registry.DefineHistogram(
      kMetricRoundPhaseSeconds, "Wall-clock seconds spent in each phase of a round.",
      {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}, {"phase"});
  registry.DefineCounter(kMetricDeviceDropsTotal,
                         "Devices that dropped out of a round after joining it, by reason.",
                         {"reason"});
  registry.DefineCounter(kMetricCheckinsTotal,
                         "Device check-ins turned away (result=rejected). Check-ins that get "
                         "a sampling coin are not counted: their numbers are private.",
                         {"result"});
  registry.Increment(kMetricCheckinsTotal, {"rejected"}, 0);
  registry.DefineCounter(kMetricRejectionsTotal, "Check-ins or uploads rejected, by reason.",
                         {"reason"});
  registry.DefineGauge(kMetricEnrolledDevices, "Devices currently enrolled.");
  registry.DefineGauge(kMetricEpsilon,
                       "Privacy spent so far: epsilon at the run's delta (accountant).");
  registry.DefineGauge(kMetricAdapterVersion, "Version of the latest committed global adapter.");
  registry.DefineCounter(kMetricRpcErrorsTotal, "RPCs that returned an error, by method and code.",
                         {"method", "code"});
  registry.DefineCounter(kMetricBytesReceivedTotal, "Request payload bytes received, by method.",
                         {"method"});
  registry.DefineCounter(kMetricBytesSentTotal, "Response payload bytes sent, by method.",
                         {"method"});
  registry.DefineCounter(kMetricReleaseChecksTotal,
                         "Release checks by devices, by result (offered: told to install one; "
                         "kept: told to keep what they run).",
                         {"result"});
  registry.Increment(kMetricReleaseChecksTotal, {"offered"}, 0);
  registry.Increment(kMetricReleaseChecksTotal, {"kept"}, 0);
  registry.DefineCounter(kMetricReleaseFallbacksTotal,
                         "Release checks reporting that the device's health gate refused a "
                         "release and it fell back.");
}

void SetRoleMetric(MetricsRegistry& registry, const std::string& role) {
  registry.DefineGauge(kMetricRole,
                       "This process's role in the population (1 for its role, 0 for the "
                       "others): leader, standby, edge or aggregator.",
                       {"role"});
  for (const char* r : {"leader", "standby", "edge", "aggregator"}) {
    registry.Set(kMetricRole, role == r ? 1 : 0, {r});
  }
}

}  // namespace fedlora::coordinator
