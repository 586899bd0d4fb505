// Whole rounds over gRPC (in-process coordinator, devices as threads without a model): the
// devices privatize a synthetic delta with the task's parameters and speak the
// secure-aggregation client states; some misbehave or drop out, and the round still commits
// from the rest.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <thread>

#include "fedlora/common/encoding.h"
#include "fedlora/common/random.h"
#include "fedlora/coordinator/coordinator_server.h"
#include "fedlora/device/coordinator_client.h"
#include "fedlora/privacy/params_wire.h"
#include "fedlora/device/participation.h"
#include "gmock/gmock.h"
#include "grpc_testutil.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

using ::testing::HasSubstr;

constexpr size_t kDim = 500;

struct Behaviour {
  int stop_before = -1;       // phase index the device silently never calls
  bool wrong_length = false;  // masked input one entry short
};

struct FakeResult {
  absl::Status status;
  bool completed = false;
  std::string detail;
};

// An honest device with a synthetic delta, or one that misbehaves as `b` says.
FakeResult RunFake(device::CoordinatorClient& client, const Behaviour& b) {
  FakeResult r;
  v1::CheckInRequest req;
  req.set_eligible(true);
  absl::StatusOr<v1::CheckInResponse> resp;
  for (int i = 0; i < 50; ++i) {
    resp = client.CheckIn(req, absl::Seconds(20));
    if (!resp.ok() || resp->has_task()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!resp.ok() || !resp->has_task()) {
    r.status = resp.ok() ? absl::DeadlineExceededError("no task") : resp.status();
    return r;
  }
  const v1::Task& task = resp->task();
  auto params = privacy::ParamsFromProto(task.privacy());
  if (!params.ok()) {
    r.status = params.status();
    return r;
  }
  std::vector<float> delta(params->dim, 0.002f);
  SecureRandom rng;
  auto up = privacy::PrepareUpdate(delta.data(), delta.size(), *params, rng);
  if (!up.ok()) {
    r.status = up.status();
    return r;
  }
  device::ParticipationResult out;
  r.status = device::RunSecAggClient(
      client, task, std::move(up->secagg_input), absl::Seconds(30), rng, &out,
      [&](int phase, v1::SecAggUpload* upload) {
        if (phase == b.stop_before) return false;
        if (phase == 2 && b.wrong_length) {
          auto* m = upload->mutable_message()->mutable_masked_input();
          m->set_dim(m->dim() - 1);
        }
        return true;
      });
  if (r.status.ok()) r.status = out.refused;
  r.completed = out.completed;
  r.detail = out.detail;
  return r;
}

class GrpcRoundTest : public ::testing::Test {
 protected:
  void Start(int goal, int devices, absl::Duration selection_timeout = absl::Minutes(10)) {
    dir_ = ::testing::TempDir() + "/grpc_round_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    testing::TestCoordinatorOptions t;
    t.goal = goal;
    t.devices = devices;
    t.tokens = devices;
    t.dim = kDim;
    t.selection_window = absl::Seconds(2);
    t.selection_timeout = selection_timeout;
    t.graph = proto::SECAGG_GRAPH_COMPLETE;
    auto server = testing::StartTestCoordinator(dir_, t);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
    for (int i = 0; i < devices; ++i) {
      auto key = Ed25519Key::Generate();
      ASSERT_TRUE(key.ok());
      v1::EnrollRequest req;
      req.set_token(testing::EnrolmentToken(i));
      req.set_public_key(key->PublicRaw());
      auto resp = device::CoordinatorClient::Enroll(channel_, req, absl::Seconds(10));
      ASSERT_TRUE(resp.ok()) << resp.status();
      keys_.push_back(std::make_unique<Ed25519Key>(std::move(*key)));
      clients_.push_back(std::make_unique<device::CoordinatorClient>(channel_, keys_.back().get(),
                                                                     resp->device_id()));
    }
  }

  std::vector<FakeResult> RunAll(const std::vector<Behaviour>& behaviours) {
    std::vector<FakeResult> results(behaviours.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < behaviours.size(); ++i) {
      threads.emplace_back([&, i] { results[i] = RunFake(*clients_[i], behaviours[i]); });
    }
    for (auto& t : threads) t.join();
    return results;
  }

  std::string dir_;
  std::unique_ptr<CoordinatorServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::vector<std::unique_ptr<Ed25519Key>> keys_;
  std::vector<std::unique_ptr<device::CoordinatorClient>> clients_;
};

TEST_F(GrpcRoundTest, WrongLengthAndDisconnectsAreDroppedAndTheRoundCommits) {
  // Goal 6: only five valid masked inputs exist (0-3 and 6), so the phase stays open until its
  // deadline and device 4's malformed input is always judged (with goal 5 the phase could close
  // first and refuse it as late instead).
  Start(/*goal=*/6, /*devices=*/7);
  auto results = RunAll({{}, {}, {}, {}, {-1, true}, {1, false}, {3, false}});
  for (int i : {0, 1, 2, 3}) {
    EXPECT_TRUE(results[i].status.ok()) << i << ": " << results[i].status;
    EXPECT_TRUE(results[i].completed) << i << ": " << results[i].detail;
  }
  EXPECT_EQ(results[4].status.code(), absl::StatusCode::kInvalidArgument) << results[4].status;
  ASSERT_TRUE(server_->rounds().WaitUntilFinished(absl::Seconds(30)));
  auto store = OpenSqliteStore(dir_);
  ASSERT_TRUE(store.ok());
  auto rounds = (*store)->ListRounds();
  ASSERT_TRUE(rounds.ok());
  ASSERT_EQ(rounds->size(), 1u);
  EXPECT_EQ((*rounds)[0].state, "committed") << (*rounds)[0].abort_reason;
  // 0-3 and 6 (which sent its masked input, then vanished) are in the sum.
  EXPECT_EQ((*rounds)[0].summed, 5);
  auto latest = (*store)->LatestAdapter();
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->version, 2u);
  EXPECT_GE(server_->metrics().Value("fedlora_device_drops_total", {"wrong_vector_length"}), 1);
}

TEST_F(GrpcRoundTest, ThirtyPercentDropAtRandomPhases) {
  Start(/*goal=*/10, /*devices=*/10);
  SeededRandom dice(uint64_t{7});
  std::vector<Behaviour> b(10);
  std::vector<uint32_t> order(10);
  for (uint32_t i = 0; i < 10; ++i) order[i] = i;
  dice.Shuffle(order);
  for (int k = 0; k < 3; ++k) b[order[k]].stop_before = static_cast<int>(dice.Uniform(4));
  auto results = RunAll(b);
  int completed = 0;
  for (const auto& r : results) completed += r.completed;
  ASSERT_TRUE(server_->rounds().WaitUntilFinished(absl::Seconds(60)));
  auto store = OpenSqliteStore(dir_);
  ASSERT_TRUE(store.ok());
  auto rounds = (*store)->ListRounds();
  ASSERT_TRUE(rounds.ok());
  ASSERT_EQ(rounds->size(), 1u);
  EXPECT_EQ((*rounds)[0].state, "committed") << (*rounds)[0].abort_reason;
  EXPECT_GE(completed, 7);
  EXPECT_GE((*rounds)[0].summed, 7);
}

// Too few devices show up for the minimum cohort: the round is aborted at the selection
// timeout, the waiting device is told why (not left hanging), and nothing is charged.
TEST_F(GrpcRoundTest, SelectionTimeoutAbortsAnUnderfullRoundWithoutACharge) {
  Start(/*goal=*/4, /*devices=*/4, /*selection_timeout=*/absl::Seconds(2));
  v1::CheckInRequest req;
  req.set_eligible(true);
  const absl::Time t0 = absl::Now();
  auto resp = clients_[0]->CheckIn(req, absl::Seconds(20));
  ASSERT_TRUE(resp.ok()) << resp.status();
  ASSERT_TRUE(resp->has_rejection());
  EXPECT_THAT(resp->rejection().detail(), HasSubstr("selection timed out"));
  EXPECT_THAT(resp->rejection().detail(), HasSubstr("1 of the minimum"));
  EXPECT_LT(absl::Now() - t0, absl::Seconds(10));
  EXPECT_EQ(server_->rounds().Current().round, 2u);
  auto store = OpenSqliteStore(dir_);
  ASSERT_TRUE(store.ok());
  auto charges = (*store)->Charges();
  ASSERT_TRUE(charges.ok());
  EXPECT_TRUE(charges->empty());
  EXPECT_EQ(server_->rounds().epsilon(), 0.0);
}

}  // namespace
}  // namespace fedlora::coordinator
