// The device-side health gate of a release: the keyboard metrics of the base with the old
// release (or the bare base) and with the new one, on the user's own held-back text. The text
// never leaves the device; only the verdict is reported (as a version number).
#ifndef FEDLORA_DEVICE_RELEASE_HEALTH_H_
#define FEDLORA_DEVICE_RELEASE_HEALTH_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/device/evaluate.h"
#include "fedlora/device/runtime.h"

namespace fedlora::device {

struct HealthGateOptions {
  double top3_margin = 0.01;  // largest tolerated drop of next-word top-3
  double nll_margin = 0.1;    // largest tolerated rise of the mean next-token loss (nats)
};

struct HealthReport {
  TextMetrics before, after;
  bool healthy = true;
};

// `old_release_dir` / `new_release_dir` are installed release folders (adapter/ inside);
// "" for the bare base. The runtime's model is left without the adapters it attached.
absl::StatusOr<HealthReport> CheckReleaseHealth(Runtime& rt, const std::string& old_release_dir,
                                                const std::string& new_release_dir,
                                                const std::vector<std::string>& texts,
                                                const HealthGateOptions& options);

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_RELEASE_HEALTH_H_
