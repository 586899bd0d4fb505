#include "fedlora/coordinator/peer_rate_limiter.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/match.h"

namespace fedlora::coordinator {

std::string PeerKey(const std::string& peer) {
  if (absl::StartsWith(peer, "ipv4:")) {
    const std::string rest = peer.substr(5);
    return "ipv4:" + rest.substr(0, rest.rfind(':'));
  }
  if (absl::StartsWith(peer, "ipv6:")) {
    std::string host = peer.substr(5);
    if (absl::StartsWith(host, "[")) host = host.substr(1, host.find(']') - 1);
    if (auto pct = host.find('%'); pct != std::string::npos) host = host.substr(0, pct);
    in6_addr a;
    if (inet_pton(AF_INET6, host.c_str(), &a) != 1) return peer;
    if (IN6_IS_ADDR_V4MAPPED(&a)) {
      char v4[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, a.s6_addr + 12, v4, sizeof(v4));
      return std::string("ipv4:") + v4;
    }
    std::memset(a.s6_addr + 8, 0, 8);  // the /64 prefix
    char text[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &a, text, sizeof(text));
    return std::string("ipv6:") + text + "/64";
  }
  return peer;
}

PeerRateLimiter::PeerRateLimiter(RateLimit limit) : limit_(limit) {}

PeerRateLimiter::Bucket& PeerRateLimiter::BucketFor(const std::string& peer, absl::Time now) {
  auto it = buckets_.find(peer);
  if (it == buckets_.end()) {
    if (buckets_.size() >= limit_.max_peers) DropFullBuckets(now);
    it = buckets_.emplace(peer, Bucket{limit_.burst, now}).first;
  }
  Bucket& b = it->second;
  if (now > b.updated) {
    b.tokens = std::min(limit_.burst,
                        b.tokens + absl::ToDoubleSeconds(now - b.updated) * limit_.rate_per_second);
    b.updated = now;
  }
  return b;
}

void PeerRateLimiter::DropFullBuckets(absl::Time now) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    const Bucket& b = it->second;
    const double tokens =
        b.tokens + std::max(0.0, absl::ToDoubleSeconds(now - b.updated)) * limit_.rate_per_second;
    it = tokens >= limit_.burst ? buckets_.erase(it) : std::next(it);
  }
  // Still full of draining peers (a flood from many addresses): forget the oldest half rather
  // than grow without bound. A forgotten peer starts again with a full bucket.
  if (buckets_.size() >= limit_.max_peers) {
    std::vector<std::pair<absl::Time, std::string>> by_age;
    for (const auto& [k, b] : buckets_) by_age.emplace_back(b.updated, k);
    std::nth_element(by_age.begin(), by_age.begin() + by_age.size() / 2, by_age.end());
    for (size_t i = 0; i < by_age.size() / 2; ++i) buckets_.erase(by_age[i].second);
  }
}

bool PeerRateLimiter::TryTake(const std::string& peer, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Bucket& b = BucketFor(peer, now);
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

void PeerRateLimiter::Refund(const std::string& peer, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Bucket& b = BucketFor(peer, now);
  b.tokens = std::min(limit_.burst, b.tokens + 1);
}

double PeerRateLimiter::SecondsUntilToken(const std::string& peer, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Bucket& b = BucketFor(peer, now);
  return b.tokens >= 1 ? 0.0 : (1 - b.tokens) / limit_.rate_per_second;
}

size_t PeerRateLimiter::peers() {
  absl::MutexLock lock(&mu_);
  return buckets_.size();
}

}  // namespace fedlora::coordinator
