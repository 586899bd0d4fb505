// A one-line progress bar on stderr, shown only when stderr is a terminal.
#ifndef FEDLORA_COMMON_PROGRESS_H_
#define FEDLORA_COMMON_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <string>

namespace fedlora {

class ProgressBar {
 public:
  // `total` units of work labelled `label`. Silent when stderr is not a TTY or `enabled` is false.
  ProgressBar(std::string label, int64_t total, bool enabled = true);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Sets progress to `done` units with an optional status suffix (e.g. "loss 3.21").
  void Update(int64_t done, const std::string& suffix = "");
  // Clears the line.
  void Finish();

 private:
  std::string label_;
  int64_t total_;
  bool active_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace fedlora

#endif  // FEDLORA_COMMON_PROGRESS_H_
