// What a multi-host leader publishes for its edge processes (docs/coordinator.md, "Edge
// processes"): the current round's selection window, written to the store's meta
// (kSelectionWindowKey, JSON) whenever a window opens or closes and when training ends, so an
// edge can answer every check-in the leader would reject without asking the leader: not
// eligible, another base model, no window open, coin false. Only sampled check-ins (and every
// secure-aggregation call) reach the leader.
//
// The coin key is secret (selection_coin.h): it is stored only in the population's database,
// which only the coordinator's processes read.
#ifndef FEDLORA_COORDINATOR_SELECTION_WINDOW_H_
#define FEDLORA_COORDINATOR_SELECTION_WINDOW_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fedlora/coordinator/metrics.h"
#include "fedlora/proto/fedlora_v1.pb.h"

namespace fedlora::coordinator {

inline constexpr char kSelectionWindowKey[] = "selection_window";

struct SelectionWindow {
  uint64_t round = 0;
  // "selecting" (coins are flipped in [opened_ms, end_ms)), "closed" (the round is past its
  // selection: come back after retry_after_ms) or "finished" (training is over: detail says why).
  std::string state;
  int64_t opened_ms = 0;  // unix ms
  int64_t end_ms = 0;     // unix ms
  int64_t retry_after_ms = 0;  // closed: unix ms when the current round should be over
  double q = 0;                // the coin's rate
  std::string coin_key;        // raw bytes (kCoinKeyBytes)
  int64_t retry_min_ms = 0, retry_max_ms = 0;  // CoordinatorOptions::retry_min / retry_max
  std::string base_model_sha256;
  uint32_t min_examples = 0;
  std::string detail;  // finished: why
  // Where edges forward sampled check-ins and secure-aggregation calls: HOST:PORT and whether
  // the leader serves TLS (with the state folder's certificate) or plaintext (loopback tests).
  std::string leader;
  bool leader_tls = true;
};

std::string SelectionWindowToJson(const SelectionWindow& w);
// INVALID_ARGUMENT when `json` is not a window this build can read.
absl::StatusOr<SelectionWindow> SelectionWindowFromJson(const std::string& json);

// The meta key under which an edge records that it flipped a coin of `round` (value: the
// window's opened_ms), before it answers that coin. A leader that saw no sampled device by the
// window's end reads it: coins were flipped elsewhere, so the round is charged and aborted
// like a single-host round with too small a sample, never silently restarted (whether anyone
// was sampled is private).
std::string CoinsFlippedKey(uint64_t round);

// The pace-steering window of a rejection: come back within [max(earliest, retry_min),
// that + max(retry_max - retry_min, 100 ms)]. The leader and the edges share it.
void SetRetryWindow(v1::Rejection* rejection, absl::Duration earliest, absl::Duration retry_min,
                    absl::Duration retry_max);

// The rejections every process gives before any coin, the leader and the edges alike: a
// device of another base model (come back in 24 h; REJECTION_BASE_MISMATCH) or one that says
// it is not eligible (in 1 h; REJECTION_TOO_FEW_EXAMPLES). nullopt: the check-in goes on.
std::optional<v1::CheckInResponse> RejectBeforeCoin(const std::string& base_model_sha256,
                                                    uint32_t min_examples,
                                                    const v1::CheckInRequest& request,
                                                    absl::Duration retry_min,
                                                    absl::Duration retry_max);

// Counts a rejection whose number is not private (never a coin's): fedlora_checkins_total
// {rejected} and fedlora_rejections_total{reason}.
void CountRejection(MetricsRegistry& metrics, v1::RejectionReason reason);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_SELECTION_WINDOW_H_
