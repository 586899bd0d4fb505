// What the network benches (bench_grpc, bench_edge, bench_aggregator) share: a monotonic clock
// in seconds, the open-files limit raised for hundreds of connections, enrolling one device
// (own Ed25519 key, own client) and every device checking in at once, each on its own thread.
#ifndef FEDLORA_BENCH_BENCH_DEVICES_H_
#define FEDLORA_BENCH_BENCH_DEVICES_H_

#include <sys/resource.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fedlora/common/ed25519.h"
#include "fedlora/device/coordinator_client.h"

namespace fedlora::bench {

inline double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Every device is a connection: raise the soft open-files limit to the hard one.
inline void RaiseOpenFilesLimit() {
  rlimit nofile;
  getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = nofile.rlim_max;
  setrlimit(RLIMIT_NOFILE, &nofile);
}

struct BenchDevice {
  std::unique_ptr<Ed25519Key> key;
  std::string id;
  std::unique_ptr<device::CoordinatorClient> client;
};

// A fresh key enrolled with `token` over `channel`; the client signs with it.
inline absl::StatusOr<BenchDevice> EnrollBenchDevice(const std::shared_ptr<grpc::Channel>& channel,
                                                     const std::string& token) {
  auto key = Ed25519Key::Generate();
  if (!key.ok()) return key.status();
  BenchDevice d;
  d.key = std::make_unique<Ed25519Key>(std::move(*key));
  v1::EnrollRequest req;
  req.set_token(token);
  req.set_public_key(d.key->PublicRaw());
  auto resp = device::CoordinatorClient::Enroll(channel, req, absl::Seconds(30));
  if (!resp.ok()) return resp.status();
  d.id = resp->device_id();
  d.client = std::make_unique<device::CoordinatorClient>(channel, d.key.get(), d.id);
  return d;
}

// Every client checks in once (eligible), all at the same time; the tasks that came back.
inline std::vector<std::optional<v1::Task>> CheckInAll(
    const std::vector<device::CoordinatorClient*>& clients, absl::Duration timeout) {
  std::vector<std::optional<v1::Task>> tasks(clients.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < clients.size(); ++i) {
    threads.emplace_back([&, i] {
      v1::CheckInRequest req;
      req.set_eligible(true);
      auto resp = clients[i]->CheckIn(req, timeout);
      if (resp.ok() && resp->has_task()) tasks[i] = resp->task();
    });
  }
  for (auto& t : threads) t.join();
  return tasks;
}

}  // namespace fedlora::bench

#endif  // FEDLORA_BENCH_BENCH_DEVICES_H_
