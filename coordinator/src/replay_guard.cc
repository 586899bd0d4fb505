#include "fedlora/coordinator/replay_guard.h"

#include <cassert>

#include "absl/strings/str_cat.h"
#include "fedlora/common/call_signature.h"

namespace fedlora::coordinator {

ReplayGuard::ReplayGuard(int64_t now_ms, int64_t window_ms, size_t max_nonces_per_device)
    : start_ms_(now_ms),
      window_ms_(window_ms),
      max_nonces_per_device_(max_nonces_per_device),
      last_full_prune_ms_(now_ms) {
  assert(window_ms > 0 && max_nonces_per_device > 0);
}

void ReplayGuard::PruneDevice(DeviceNonces& d, int64_t now_ms) {
  // A call with call_ms < now - window is refused as stale, so its nonce need not be kept.
  const int64_t oldest = now_ms - window_ms_;
  auto end = d.by_time.lower_bound(oldest);
  for (auto it = d.by_time.begin(); it != end; ++it) d.seen.erase(it->second);
  d.by_time.erase(d.by_time.begin(), end);
}

void ReplayGuard::PruneAll(int64_t now_ms) {
  for (auto it = devices_.begin(); it != devices_.end();) {
    PruneDevice(it->second, now_ms);
    if (it->second.seen.empty()) {
      it = devices_.erase(it);
    } else {
      ++it;
    }
  }
  last_full_prune_ms_ = now_ms;
}

absl::Status ReplayGuard::Check(const std::string& device_id, int64_t call_ms,
                                const std::string& nonce, int64_t now_ms) {
  if (device_id.empty()) {
    return absl::InvalidArgumentError("replay guard: empty device id");
  }
  if (nonce.size() != kCallNonceBytes) {
    return absl::UnauthenticatedError(absl::StrCat(
        "call from device ", device_id, " carries a ", nonce.size(), "-byte nonce, expected ",
        kCallNonceBytes, " (hint: x-fedlora-nonce must be 16 fresh random bytes in hex)"));
  }
  if (call_ms < now_ms - window_ms_ || call_ms > now_ms + window_ms_) {
    return absl::UnauthenticatedError(
        absl::StrCat("call from device ", device_id, " is signed at ", call_ms,
                     " ms but the coordinator time is ", now_ms, " ms: clock skew of ",
                     call_ms - now_ms, " ms exceeds the allowed +/-", window_ms_,
                     " ms (hint: check the device clock (NTP); a stale call may be a replay)"));
  }
  if (call_ms < start_ms_) {
    // UNAVAILABLE, not UNAUTHENTICATED: an honest device whose call was in flight while this
    // process started (a restart, or a standby taking over behind HAProxy) only needs to retry
    // with a fresh signature, which devices do for UNAVAILABLE; the call itself is refused.
    return absl::UnavailableError(absl::StrCat(
        "call from device ", device_id, " was signed at ", call_ms,
        " ms, before this coordinator started (", start_ms_,
        " ms); such calls are refused so that a restart cannot be used to replay them (hint: "
        "the device should retry with a fresh signature; if this persists, check the device "
        "clock)"));
  }
  absl::MutexLock lock(&mu_);
  if (now_ms - last_full_prune_ms_ > window_ms_) PruneAll(now_ms);
  DeviceNonces& d = devices_[device_id];
  PruneDevice(d, now_ms);
  if (d.seen.count(nonce) != 0) {
    return absl::UnauthenticatedError(absl::StrCat(
        "replayed call: device ", device_id, " already used this nonce within the last ",
        window_ms_, " ms (hint: a captured call was resent, or the device reuses nonces)"));
  }
  if (d.seen.size() >= max_nonces_per_device_) {
    return absl::ResourceExhaustedError(absl::StrCat("device ", device_id, " made more than ",
                                                     max_nonces_per_device_, " calls within ",
                                                     window_ms_,
                                                     " ms (hint: the device is misbehaving or "
                                                     "retrying in a tight loop; slow it down)"));
  }
  d.seen.insert(nonce);
  d.by_time.emplace(call_ms, nonce);
  return absl::OkStatus();
}

size_t ReplayGuard::RememberedNonces(int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  PruneAll(now_ms);
  size_t n = 0;
  for (const auto& [id, d] : devices_) n += d.seen.size();
  return n;
}

}  // namespace fedlora::coordinator
