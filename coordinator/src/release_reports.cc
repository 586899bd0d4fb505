#include "release_reports.h"

#include <algorithm>
#include <chrono>
#include <vector>

namespace fedlora::coordinator::internal {

ReleaseReportLog::ReleaseReportLog(Store* store, absl::Duration interval)
    : store_(store), interval_(std::max(interval, absl::Milliseconds(10))) {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, absl::ToChronoMilliseconds(interval_));
      if (stop_ || pending_.empty()) continue;
      lock.unlock();
      (void)Flush();  // on failure the reports stay for the next interval
      lock.lock();
    }
  });
}

ReleaseReportLog::~ReleaseReportLog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  (void)Flush();
}

void ReleaseReportLog::Record(DeviceReleaseReport report) {
  if (report.unix == 0) report.unix = absl::ToUnixSeconds(absl::Now());
  std::lock_guard<std::mutex> lock(mu_);
  std::string id = report.device_id;
  pending_[std::move(id)] = std::move(report);
}

absl::Status ReleaseReportLog::Flush() {
  std::lock_guard<std::mutex> flush(flush_mu_);
  std::map<std::string, DeviceReleaseReport> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(pending_);
  }
  if (batch.empty()) return absl::OkStatus();
  std::vector<DeviceReleaseReport> reports;
  reports.reserve(batch.size());
  for (auto& [id, r] : batch) reports.push_back(r);
  absl::Status s = store_->RecordDeviceReleases(reports);
  if (!s.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, r] : batch) pending_.emplace(id, std::move(r));  // newer ones win
  }
  return s;
}

size_t ReleaseReportLog::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_.size();
}

}  // namespace fedlora::coordinator::internal
