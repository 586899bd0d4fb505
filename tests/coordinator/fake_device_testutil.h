// Devices as threads without a model, for whole rounds over gRPC against an in-process
// coordinator (grpc_testutil.h): each privatizes a synthetic delta with the task's parameters
// and speaks the secure-aggregation client states; a Behaviour makes it slow, silent, malformed
// or malicious. GrpcRoundTest is the fixture of the round tests.
#ifndef FEDLORA_TESTS_COORDINATOR_FAKE_DEVICE_TESTUTIL_H_
#define FEDLORA_TESTS_COORDINATOR_FAKE_DEVICE_TESTUTIL_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "fedlora/common/ed25519.h"
#include "fedlora/coordinator/coordinator_server.h"
#include "fedlora/device/coordinator_client.h"
#include "grpc_testutil.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator::testing {

inline constexpr size_t kFakeDim = 500;

struct Behaviour {
  int stop_before = -1;       // phase index the device silently never calls
  bool wrong_length = false;  // masked input one entry short
  // First check-in at this offset from the coordinator's start: by default well inside the
  // first selection window (4 s), so that all devices share it whatever enrolment took.
  absl::Duration checkin_at = absl::Seconds(1);
  int checkins = 50;  // check-ins tried before giving up (100 ms apart)
  absl::Duration masked_delay = absl::ZeroDuration();  // a slow device's masked input
  absl::Duration unmask_delay = absl::ZeroDuration();  // ... and its unmasking message
  // Adds +-2^(bits-2) (random signs) to every entry of its input: the same as adding that
  // vector to the masked input, since masks cancel mod 2^bits. Secure aggregation cannot see it.
  bool malicious = false;
  // When set, decides stop_before from the task it got (e.g. silence the devices of one shard,
  // which the coordinator draws at random).
  std::function<int(const v1::Task&)> stop_before_for_task = nullptr;
};

struct FakeResult {
  absl::Status status;
  bool completed = false;
  std::string detail;                         // why not completed
  std::string rejection;                      // the last check-in rejection's detail
  absl::Time task_at = absl::InfinitePast();  // when the task came
  v1::Task task;                              // the task it got
  size_t sent_dim = 0;                        // entries of the masked input it sent
  std::vector<uint32_t> input;                // its privatized input (what it masked)
};

// Checks in (retrying rejections every 100 ms, b.checkins times) from `start + b.checkin_at`, then
// takes part in the round as `b` says.
FakeResult RunFake(device::CoordinatorClient& client, const Behaviour& b, absl::Time start);

// True if `s` contains a decimal digit (an operator-visible text naming a count).
bool HasDigit(const std::string& s);

class GrpcRoundTest : public ::testing::Test {
 protected:
  // A coordinator (complete graph, kFakeDim values, selection window 4 s unless `t` says
  // otherwise) and `devices` enrolled clients.
  void Start(int goal, int devices, TestCoordinatorOptions t = {});
  // Runs device i as behaviours[i], all at once; returns when all are done.
  std::vector<FakeResult> RunAll(const std::vector<Behaviour>& behaviours);
  // The store's record of `round` (fails the test when missing).
  RoundRecord Round(uint64_t round);
  size_t Charges();
  std::vector<std::string> Log();

  std::string dir_;
  absl::Time started_;  // round 1's selection window opens after this
  std::unique_ptr<CoordinatorServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::vector<std::unique_ptr<Ed25519Key>> keys_;
  std::vector<std::unique_ptr<device::CoordinatorClient>> clients_;
  std::vector<std::string> device_ids_;  // clients_[i]'s
  std::mutex log_mu_;
  std::vector<std::string> log_;
};

}  // namespace fedlora::coordinator::testing

#endif  // FEDLORA_TESTS_COORDINATOR_FAKE_DEVICE_TESTUTIL_H_
