// Internal: GetRelease's reports of what each device runs (the rollout statistics of
// `coordinator status`: running version, the version its health gate refused), written
// behind. A call only keeps the device's latest report in memory (one entry per enrolled
// device); a thread writes them in one store transaction (one fsync) every `interval`, and
// Flush() or the destructor writes what is left. The offer itself never reads these rows
// (release_rollout.h decides from the request), so a report reaching the store up to
// `interval` late changes no answer; a crash loses at most the last interval's reports, which
// each device repeats on its next check.
#ifndef FEDLORA_COORDINATOR_SRC_RELEASE_REPORTS_H_
#define FEDLORA_COORDINATOR_SRC_RELEASE_REPORTS_H_

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "fedlora/coordinator/store.h"

namespace fedlora::coordinator::internal {

class ReleaseReportLog {
 public:
  // `store` must outlive the log.
  ReleaseReportLog(Store* store, absl::Duration interval);
  ~ReleaseReportLog();  // flushes
  ReleaseReportLog(const ReleaseReportLog&) = delete;
  ReleaseReportLog& operator=(const ReleaseReportLog&) = delete;

  // Keeps `report` (its time set to now when 0), replacing the device's previous one. Cheap.
  void Record(DeviceReleaseReport report);
  // Writes every kept report now; the store's error otherwise (they are kept for the next try
  // unless a newer report of the device came meanwhile).
  absl::Status Flush();
  size_t pending() const;

 private:
  Store* store_;
  const absl::Duration interval_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, DeviceReleaseReport> pending_;
  bool stop_ = false;
  std::mutex flush_mu_;  // one write at a time (the thread's and Flush())
  std::thread thread_;
};

}  // namespace fedlora::coordinator::internal

#endif  // FEDLORA_COORDINATOR_SRC_RELEASE_REPORTS_H_
