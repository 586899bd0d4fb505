// A token bucket per peer address, for calls that anyone can make before authenticating
// (Enroll): a peer may make `burst` calls at once and then one every `1 / rate_per_second`;
// callers refund the token of a call that turned out legitimate, so only failures drain a
// bucket (many phones behind one NAT address can all enrol; one peer guessing tokens cannot).
//
//   PeerRateLimiter limiter({/*burst=*/10, /*rate_per_second=*/0.2});
//   if (!limiter.TryTake(PeerKey(ctx->peer()), absl::Now())) return RESOURCE_EXHAUSTED;
//   ... if the call succeeded: limiter.Refund(key, absl::Now());
#ifndef FEDLORA_COORDINATOR_PEER_RATE_LIMITER_H_
#define FEDLORA_COORDINATOR_PEER_RATE_LIMITER_H_

#include <cstddef>
#include <string>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fedlora::coordinator {

struct RateLimit {
  double burst = 10;             // tokens a full bucket holds (> 0)
  double rate_per_second = 0.2;  // refill (> 0): 12 failed calls a minute after the burst
  size_t max_peers = 100000;     // buckets kept; full ones are dropped first when exceeded
};

// The part of a gRPC peer string ("ipv4:1.2.3.4:5678", "ipv6:[2001:db8::1]:5678",
// "unix:/path") that identifies the client: the IPv4 address, the /64 prefix of an IPv6
// address (one subscriber usually holds a whole /64), or the string without a port otherwise.
std::string PeerKey(const std::string& grpc_peer);

class PeerRateLimiter {
 public:
  explicit PeerRateLimiter(RateLimit limit);

  // Takes one token from `peer`'s bucket (refilled up to `now`); false when it is empty
  // (the caller refuses with RESOURCE_EXHAUSTED). Thread-safe.
  bool TryTake(const std::string& peer, absl::Time now);
  // Gives back a token taken by TryTake (never above `burst`). Thread-safe.
  void Refund(const std::string& peer, absl::Time now);
  // Seconds until `peer` has a token again (0 if it has one now).
  double SecondsUntilToken(const std::string& peer, absl::Time now);
  size_t peers();

 private:
  struct Bucket {
    double tokens;
    absl::Time updated;
  };
  Bucket& BucketFor(const std::string& peer, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropFullBuckets(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RateLimit limit_;
  absl::Mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_PEER_RATE_LIMITER_H_
