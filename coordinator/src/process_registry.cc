// ThisProcess and ProcessHeartbeat: one process's row in the registry, kept fresh.
#include "fedlora/coordinator/process_registry.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/random.h"

namespace fedlora::coordinator {
namespace {

std::string HostName() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') return "host";
  return host;
}

}  // namespace

ProcessRecord ThisProcess(const std::string& role, const std::string& address,
                          const std::string& metrics_address, const std::string& id) {
  ProcessRecord r;
  r.role = role;
  r.address = address;
  r.metrics_address = metrics_address;
  r.host = HostName();
  r.pid = getpid();
  r.version = FEDLORA_VERSION_STRING;
  r.id = id;
  if (r.id.empty()) {
    SecureRandom rng;
    std::string tag(4, '\0');
    rng.Fill(reinterpret_cast<uint8_t*>(tag.data()), tag.size());
    r.id = absl::StrCat(role, ":", r.host, ":", r.pid, ":", HexEncode(tag));
  }
  return r;
}

ProcessHeartbeat::ProcessHeartbeat(ProcessRecord self, ProcessHeartbeatOptions options)
    : o_(std::move(options)), self_(std::move(self)) {}

absl::StatusOr<std::unique_ptr<ProcessHeartbeat>> ProcessHeartbeat::Start(
    ProcessRecord self, ProcessHeartbeatOptions options) {
  if (!options.registry) return absl::InvalidArgumentError("process heartbeat: no registry");
  std::unique_ptr<ProcessHeartbeat> h(new ProcessHeartbeat(std::move(self), std::move(options)));
  const absl::Status first = h->Beat();
  if (absl::IsInvalidArgument(first)) return first;
  h->thread_ = std::thread([p = h.get()] {
    std::unique_lock<std::mutex> l(p->mu_);
    while (!p->wake_.wait_for(l, p->o_.every, [p] { return p->stop_; })) {
      l.unlock();
      (void)p->Beat();
      l.lock();
    }
  });
  return h;
}

// One beat at a time (beat_mu_), so a SetRole's beat is never overtaken by an older record.
absl::Status ProcessHeartbeat::Beat() {
  std::lock_guard<std::mutex> one(beat_mu_);
  ProcessRecord self;
  bool prune = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    self = self_;
    prune = self.role == kRoleLeader && beats_++ % 30 == 0;
  }
  absl::Status s = o_.registry->Heartbeat(self);
  if (s.ok() && prune) s = o_.registry->Prune(kProcessPruneAfter).status();
  std::lock_guard<std::mutex> l(mu_);
  last_ = s;
  const std::string seen = s.ok() ? "" : s.ToString();
  if (seen != last_logged_ && o_.log) {
    o_.log(s.ok() ? std::string("process registry: heartbeat renewed again")
                  : absl::StrCat("process registry: heartbeat failed (", seen,
                                 "); `coordinator status` will show this process stale "
                                 "until it succeeds; retrying"));
  }
  last_logged_ = seen;
  return s;
}

absl::Status ProcessHeartbeat::SetRole(const std::string& role, const std::string& address) {
  {
    std::lock_guard<std::mutex> l(mu_);
    self_.role = role;
    self_.address = address;
  }
  return Beat();
}

absl::Status ProcessHeartbeat::last_status() const {
  std::lock_guard<std::mutex> l(mu_);
  return last_;
}

ProcessRecord ProcessHeartbeat::record() const {
  std::lock_guard<std::mutex> l(mu_);
  return self_;
}

ProcessHeartbeat::~ProcessHeartbeat() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  (void)o_.registry->Remove(self_.id);  // a clean stop: gone at once, not stale
}

}  // namespace fedlora::coordinator
