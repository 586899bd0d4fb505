#include "fedlora/coordinator/leadership.h"

#include <unistd.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/random.h"

namespace fedlora::coordinator {

std::string DefaultHolderName() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  SecureRandom rng;
  std::string tag(4, '\0');
  rng.Fill(reinterpret_cast<uint8_t*>(tag.data()), tag.size());
  return absl::StrCat(host[0] ? host : "host", ":", getpid(), ":", HexEncode(tag));
}

absl::StatusOr<std::shared_ptr<LeaderLease>> AwaitLeadership(const LeadershipOptions& o,
                                                             const std::function<bool()>& stop) {
  if (o.ttl < std::chrono::seconds(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease ttl of ", o.ttl.count(), " ms is too short (at least 1000 ms)"));
  }
  if (!PostgresSupported()) {
    return absl::UnimplementedError(
        "this build has no PostgreSQL support (hint: install libpq-dev, e.g. `bash "
        "scripts/setup.sh test`, and rebuild)");
  }
  const std::string holder = o.holder.empty() ? DefaultHolderName() : o.holder;
  auto log = [&](const std::string& line) {
    if (o.log) o.log(line);
  };
  const auto pause = o.ttl / 4;
  std::shared_ptr<LeaderLease> lease;
  std::string last_seen;
  while (!stop()) {
    if (!lease) {
      auto opened = OpenLeaderLease(o.conninfo, o.population);
      if (!opened.ok()) {
        if (last_seen != opened.status().ToString()) log(absl::StrCat("standby: ", opened.status().ToString(), "; retrying"));
        last_seen = opened.status().ToString();
        std::this_thread::sleep_for(pause);
        continue;
      }
      lease = std::move(*opened);
    }
    auto got = lease->TryAcquire(holder, o.ttl);
    if (got.ok() && *got) {
      log(absl::StrCat("leader of population '", o.population, "' as ", holder, " (epoch ",
                       lease->epoch(), ")"));
      return lease;
    }
    std::string seen;
    if (!got.ok()) {
      seen = absl::StrCat("standby: ", got.status().ToString(), "; retrying");
    } else if (auto cur = lease->Current(); cur.ok()) {
      seen = absl::StrCat("standby: ", cur->holder, " leads (epoch ", cur->epoch, ")");
    }
    if (!seen.empty() && seen != last_seen) log(seen);
    last_seen = seen;
    std::this_thread::sleep_for(pause);
  }
  return absl::CancelledError("stopped while waiting to lead");
}

}  // namespace fedlora::coordinator
