// An edge process's round side (round_backend.h; docs/coordinator.md, "Edge processes"): it
// answers every check-in the leader would reject from the selection window the leader
// publishes in the store (selection_window.h; read every poll_interval): another base model,
// not eligible, no window open (pace-steered like the leader), training over, and the coin
// false (selection_coin.h: the same coin the leader computes). Sampled check-ins and every
// secure-aggregation call go to the leader as the device's own signed call: its request bytes
// and signature metadata, so the leader verifies the device itself and recomputes the coin;
// the leader's answer goes back to the device. The leader unreachable: UNAVAILABLE (devices
// retry). Edges share nothing but the database.
//
// Before it answers the first coin of a window, an edge records in the store that coins were
// flipped in it (CoinsFlippedKey), so a leader that saw no sampled device charges the round
// instead of restarting it; no coin is answered closer than close_margin to the window's end
// or after that record could not be written.
#ifndef FEDLORA_COORDINATOR_EDGE_ROUNDS_H_
#define FEDLORA_COORDINATOR_EDGE_ROUNDS_H_

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fedlora/coordinator/metrics.h"
#include "fedlora/coordinator/round_backend.h"
#include "fedlora/coordinator/selection_window.h"
#include "fedlora/coordinator/store.h"

namespace fedlora::coordinator {

struct EdgeRoundsOptions {
  absl::Duration poll_interval = absl::Milliseconds(200);
  // A check-in the held window would turn away (no window, closed, outside its coin time) reads
  // the window again first when the held one is at least this old: the leader opens the next
  // window the moment a round commits, and a device that checks in again at once must not be
  // sent away until "the round should be over" (the phase's deadline, minutes) by a window
  // this edge read before the commit (a device checks in again within a millisecond of its
  // round's last reply: two devices of one round check in again at once, and one sent away
  // alone leaves the other sampled alone, window after window, each aborted and charged). One
  // such read at a time (the others wait for it and use it), at most one per this interval (at
  // most 200 extra store reads per second per edge).
  absl::Duration reread_after = absl::Milliseconds(5);
  // No coin this close to the window's end (nor after the store record took that long): the
  // leader must find the record when it closes the window.
  absl::Duration close_margin = absl::Milliseconds(200);
  // PEM roots the leader's TLS certificate is checked against (the state folder's tls/ca.pem).
  std::string leader_roots_pem;
  // The longest a forwarded call waits for the leader when the device set no deadline.
  absl::Duration max_forward_wait = absl::Minutes(10);
  // Forwarded calls in flight on one connection to the leader before another is opened: each
  // waits there until its phase closes, and the leader allows ServiceLimits::
  // max_streams_per_connection (32) per connection; calls beyond it would queue in the edge.
  int forward_streams_per_connection = 16;
  std::function<absl::Time()> clock;  // null = absl::Now (tests: a fake clock)
  std::function<void(const std::string&)> log;
};

// The edge's metric families (DefineCoordinatorMetrics's plus these; docs/coordinator.md).
void DefineEdgeMetrics(MetricsRegistry& metrics);

class EdgeRounds final : public RoundBackend {
 public:
  // `store` (unfenced: an edge writes only enrolments, release reports and the coin record)
  // and `metrics` (DefineEdgeMetrics) must outlive it.
  EdgeRounds(Store* store, MetricsRegistry* metrics, EdgeRoundsOptions options);
  ~EdgeRounds() override;

  // Reads the published window once. NOT_FOUND when none is published yet (no leader has
  // served this population), the store's error otherwise; the window held stays.
  absl::Status Poll();
  // Polls every poll_interval on a thread until Stop() (errors are logged once per kind).
  void Start();
  // Stops polling, cancels the calls forwarded to the leader that are still waiting (their
  // devices get CANCELLED, which they retry) and refuses new ones (UNAVAILABLE). Once only.
  void Stop();
  // Tests: holds `w` as if it had just been read.
  void SetWindow(const SelectionWindow& w);

  // The local answer to `request` at `now`, or nullopt when the device is sampled (the call
  // goes to the leader). The store's error when the coin record cannot be written.
  absl::StatusOr<std::optional<v1::CheckInResponse>> Decide(const std::string& device_id,
                                                           const v1::CheckInRequest& request,
                                                           absl::Time now);

  void CheckIn(const SignedCall& call, const v1::CheckInRequest& request,
               RoundManager::CheckInDone done) override;
  void SecAgg(const SignedCall& call, secagg::Phase phase, const v1::SecAggUpload& upload,
              const std::string& digest, RoundManager::SecAggDone done) override;

 private:
  class Forwarder;
  absl::Time Now() const { return options_.clock ? options_.clock() : absl::Now(); }
  std::optional<SelectionWindow> Held() const;  // the window held now (a copy)
  // Held(), read again first when it would turn the device away and is reread_after old.
  std::optional<SelectionWindow> HeldFresh(absl::Time now);
  absl::StatusOr<std::optional<v1::CheckInResponse>> DecideOn(
      const std::optional<SelectionWindow>& held, const std::string& device_id,
      const v1::CheckInRequest& request, absl::Time now);
  // Records once per window that this edge flipped a coin in it (CoinsFlippedKey).
  absl::Status RecordCoins(const SelectionWindow& w);

  Store* store_;
  MetricsRegistry* metrics_;
  EdgeRoundsOptions options_;
  std::unique_ptr<Forwarder> forwarder_;
  mutable std::mutex mu_;
  std::optional<SelectionWindow> window_;
  absl::Time window_read_ = absl::InfinitePast();
  std::mutex reread_mu_;  // one reread at a time; check-ins waiting for it use what it read
  std::mutex record_mu_;  // one coin record write at a time; the others wait for it
  std::string recorded_;  // round/opened_ms of the last window recorded
  std::atomic<bool> stop_{false};
  std::thread poller_;
};

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_EDGE_ROUNDS_H_
