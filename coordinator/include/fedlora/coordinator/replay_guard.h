// Refuses replayed, stale and pre-start signed calls (see fedlora/common/call_signature.h).
//
// Every signed call carries (device id, time in ms, 16-byte nonce). After its signature has
// been verified, the server asks ReplayGuard::Check whether to accept it. A call is accepted
// at most once: its nonce is remembered for as long as its timestamp is inside the window, and
// once the timestamp falls out of the window the call is refused for being stale anyway.
//
// Restart safety: the nonce memory lives in this process only. A coordinator that restarted
// with an empty memory would accept any call captured in the last `window` before the restart
// a second time. The guard therefore also refuses every call signed before it was created
// (call_ms < creation time): such a call might already have been accepted by the previous
// process, and its nonce is unknown to this one. A restart thus opens no replay window; the
// price is that calls signed just before a restart (or by a device whose clock is behind)
// are refused once and must be re-signed by the device with a fresh timestamp.
//
// Check only after the signature verifies: otherwise an attacker could fill a device's nonce
// memory with forged calls. Memory is bounded by (enrolled devices) x `max_nonces_per_device`:
// entries whose timestamp left the window are pruned, and a device that signs more than
// `max_nonces_per_device` calls per window is refused with RESOURCE_EXHAUSTED.
#ifndef FEDLORA_COORDINATOR_REPLAY_GUARD_H_
#define FEDLORA_COORDINATOR_REPLAY_GUARD_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace fedlora::coordinator {

class ReplayGuard {
 public:
  static constexpr int64_t kDefaultWindowMs = 120000;
  static constexpr size_t kDefaultMaxNoncesPerDevice = 10000;

  // `now_ms`: the current Unix time in ms (the guard's creation time; calls signed earlier are
  // refused). `window_ms` (> 0): the accepted clock skew either way.
  explicit ReplayGuard(int64_t now_ms, int64_t window_ms = kDefaultWindowMs,
                       size_t max_nonces_per_device = kDefaultMaxNoncesPerDevice);

  // Accepts (OK, and remembers the nonce) or refuses one call. Thread-safe. Refusals:
  //   INVALID_ARGUMENT   device_id empty
  //   UNAUTHENTICATED    nonce not 16 bytes; call_ms outside [now-window, now+window]
  //                      ("clock skew ... check the device clock"); nonce already seen for
  //                      this device within the window ("replayed call")
  //   UNAVAILABLE        call_ms before the guard was created (signed before this
  //                      coordinator started): refused, and a device retries with a fresh
  //                      signature (a call in flight across a restart or a failover)
  //   RESOURCE_EXHAUSTED the device already has max_nonces_per_device calls in the window
  absl::Status Check(const std::string& device_id, int64_t call_ms, const std::string& nonce,
                     int64_t now_ms);

  // Number of nonces remembered (all devices), after pruning at `now_ms`. For tests/metrics.
  size_t RememberedNonces(int64_t now_ms);
  int64_t start_ms() const { return start_ms_; }
  int64_t window_ms() const { return window_ms_; }

 private:
  struct DeviceNonces {
    std::unordered_set<std::string> seen;
    std::multimap<int64_t, std::string> by_time;  // call_ms -> nonce, for pruning.
  };
  void PruneDevice(DeviceNonces& d, int64_t now_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PruneAll(int64_t now_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int64_t start_ms_;
  const int64_t window_ms_;
  const size_t max_nonces_per_device_;
  absl::Mutex mu_;
  std::unordered_map<std::string, DeviceNonces> devices_ ABSL_GUARDED_BY(mu_);
  int64_t last_full_prune_ms_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_REPLAY_GUARD_H_
