// Operator metrics of the coordinator: counters, gauges and histograms keyed by label values,
// rendered in the Prometheus text exposition format 0.0.4 (served by metrics_http.h).
//
// Every method is thread-safe. The hot path (Increment/Set/Observe on a label set seen before)
// takes a shared lock on the family table and the family's own mutex, and does not allocate.
//
// Misuse is a programmer error and aborts with a message on stderr (CHECK semantics): a bad
// metric or label name, redefining a name with a different type/labels/buckets, using an
// undefined name or a name of the wrong type, the wrong number of label values, a negative or
// NaN counter increment, and histogram bounds that are not finite and strictly increasing.
#ifndef FEDLORA_COORDINATOR_METRICS_H_
#define FEDLORA_COORDINATOR_METRICS_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace fedlora::coordinator {

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Defines a family. `name` must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
  // [a-zA-Z_][a-zA-Z0-9_]* (not starting with "__", distinct; a histogram may not use "le").
  // Defining the same family again identically is a no-op; differently, it aborts.
  // A family without labels has its single series from the start (rendered as 0).
  void DefineCounter(const std::string& name, const std::string& help,
                     std::vector<std::string> label_names = {});
  void DefineGauge(const std::string& name, const std::string& help,
                   std::vector<std::string> label_names = {});
  // `upper_bounds`: finite, strictly increasing; the +Inf bucket is implicit (a trailing +Inf
  // is accepted and dropped).
  void DefineHistogram(const std::string& name, const std::string& help,
                       std::vector<double> upper_bounds, std::vector<std::string> label_names = {});

  // Adds `by` (>= 0) to a counter, or `by` (any sign) to a gauge. `by = 0` creates the series,
  // which is how a known label value is made visible before its first event.
  void Increment(const std::string& name, const std::vector<std::string>& label_values = {},
                 double by = 1);
  // Sets a gauge.
  void Set(const std::string& name, double value,
           const std::vector<std::string>& label_values = {});
  // Records one observation in a histogram (value <= le goes into bucket le; NaN into +Inf).
  void Observe(const std::string& name, double value,
               const std::vector<std::string>& label_values = {});

  // Current value of a counter or gauge series; 0 for a label set not seen yet.
  double Value(const std::string& name, const std::vector<std::string>& label_values = {}) const;

  // Text exposition format 0.0.4: per family (sorted by name) "# HELP", "# TYPE", then its
  // series sorted by label values; histograms as cumulative _bucket{le=...} (incl. "+Inf"),
  // _sum and _count. Numbers are printed in the shortest form that reads back exactly.
  std::string RenderPrometheus() const;

 private:
  struct Family;
  enum class Type { kCounter, kGauge, kHistogram };

  void Define(const std::string& name, const std::string& help, Type type,
              std::vector<std::string> label_names, std::vector<double> upper_bounds);
  // Aborts unless `name` is defined with type `type` (or one of counter/gauge if
  // `counter_or_gauge`) and `label_values` has the family's arity.
  Family* Find(const std::string& name, const std::vector<std::string>& label_values,
               const char* op) const;

  mutable absl::Mutex mu_;  // guards the table; families themselves are never removed
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_ ABSL_GUARDED_BY(mu_);
};

// Names of the coordinator's standard families (DefineCoordinatorMetrics defines them all).
inline constexpr char kMetricRoundsTotal[] = "fedlora_rounds_total";               // {outcome}
inline constexpr char kMetricRoundPhaseSeconds[] = "fedlora_round_phase_seconds";  // {phase}
inline constexpr char kMetricDeviceDropsTotal[] = "fedlora_device_drops_total";    // {reason}
inline constexpr char kMetricCheckinsTotal[] = "fedlora_checkins_total";           // {result}
inline constexpr char kMetricRejectionsTotal[] = "fedlora_rejections_total";       // {reason}
inline constexpr char kMetricEnrolledDevices[] = "fedlora_enrolled_devices";
inline constexpr char kMetricEpsilon[] = "fedlora_epsilon";
inline constexpr char kMetricAdapterVersion[] = "fedlora_adapter_version";
inline constexpr char kMetricRpcErrorsTotal[] = "fedlora_rpc_errors_total";  // {method, code}
inline constexpr char kMetricBytesReceivedTotal[] = "fedlora_bytes_received_total";  // {method}
inline constexpr char kMetricBytesSentTotal[] = "fedlora_bytes_sent_total";          // {method}
inline constexpr char kMetricReleaseChecksTotal[] = "fedlora_release_checks_total";  // {result}
inline constexpr char kMetricReleaseFallbacksTotal[] = "fedlora_release_fallbacks_total";

// Defines the coordinator's standard families (see docs/coordinator.md, "Metrics"):
//   fedlora_rounds_total{outcome="committed|aborted"}      counter (both outcomes start at 0)
//   fedlora_round_phase_seconds{phase}                      histogram, 0.05 s .. 1800 s
//   fedlora_device_drops_total{reason}                      counter
//   fedlora_checkins_total{result="rejected"}              counter (starts at 0; check-ins
//                                                           given a coin are not counted)
//   fedlora_rejections_total{reason}                        counter
//   fedlora_enrolled_devices, fedlora_epsilon, fedlora_adapter_version   gauges
//   fedlora_rpc_errors_total{method,code}                   counter
//   fedlora_bytes_received_total{method}, fedlora_bytes_sent_total{method}   counters
// Idempotent.
void DefineCoordinatorMetrics(MetricsRegistry& registry);

// The process's role in a multi-host population, on every process's /metrics:
//   fedlora_role{role="leader|standby|edge|aggregator"}   gauge: 1 for this process's role,
//                                                          0 for the others
// (a single-host coordinator says "leader"). Defines the family if needed; call again when the
// role changes.
inline constexpr char kMetricRole[] = "fedlora_role";
void SetRoleMetric(MetricsRegistry& registry, const std::string& role);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_METRICS_H_
