#include "fake_device_testutil.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "fedlora/common/random.h"
#include "fedlora/coordinator/state_folder.h"
#include "fedlora/device/participation.h"
#include "fedlora/privacy/params_wire.h"
#include "fedlora/privacy/prepare_update.h"

namespace fedlora::coordinator::testing {

FakeResult RunFake(device::CoordinatorClient& client, const Behaviour& b, absl::Time start) {
  FakeResult r;
  v1::CheckInRequest req;
  req.set_eligible(true);
  absl::SleepFor(start + b.checkin_at - absl::Now());
  absl::StatusOr<v1::CheckInResponse> resp;
  for (int i = 0; i < b.checkins; ++i) {
    resp = client.CheckIn(req, absl::Seconds(20));
    if (!resp.ok() || resp->has_task()) break;
    r.rejection = resp->rejection().detail();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!resp.ok() || !resp->has_task()) {
    r.status = resp.ok() ? absl::DeadlineExceededError("no task") : resp.status();
    return r;
  }
  r.task_at = absl::Now();
  const v1::Task& task = resp->task();
  r.task = task;
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
  if (b.malicious) {
    const uint32_t bits = task.secagg().bits();
    const uint64_t modulus = uint64_t{1} << bits, quarter = modulus / 4;
    for (uint32_t& v : up->secagg_input) {
      const uint64_t shift = (rng.NextU64() & 1) ? quarter : modulus - quarter;
      v = static_cast<uint32_t>((v + shift) % modulus);
    }
  }
  r.input = up->secagg_input;
  const int stop_before = b.stop_before_for_task ? b.stop_before_for_task(task) : b.stop_before;
  device::ParticipationResult out;
  r.status = device::RunSecAggClient(client, task, std::move(up->secagg_input), absl::Seconds(30),
                                     rng, &out, [&](int phase, v1::SecAggUpload* upload) {
                                       if (phase == stop_before) return false;
                                       if (phase == 2) absl::SleepFor(b.masked_delay);
                                       if (phase == 3) absl::SleepFor(b.unmask_delay);
                                       if (phase == 2) {
                                         r.sent_dim = upload->message().masked_input().dim();
                                       }
                                       if (phase == 2 && b.wrong_length) {
                                         auto* m =
                                             upload->mutable_message()->mutable_masked_input();
                                         m->set_dim(m->dim() - 1);
                                       }
                                       return true;
                                     });
  if (r.status.ok()) r.status = out.refused;
  r.completed = out.completed;
  r.detail = out.detail;
  return r;
}

bool HasDigit(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void GrpcRoundTest::Start(int goal, int devices, TestCoordinatorOptions t) {
  dir_ = ::testing::TempDir() + "/grpc_round_" + std::to_string(getpid()) + "_" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name();
  t.goal = goal;
  t.devices = devices;
  t.tokens = devices;
  t.dim = kFakeDim;
  if (t.selection_window == TestCoordinatorOptions().selection_window) {
    t.selection_window = absl::Seconds(4);
  }
  t.graph = proto::SECAGG_GRAPH_COMPLETE;
  t.log = [this](const std::string& line) {
    std::lock_guard<std::mutex> l(log_mu_);
    log_.push_back(line);
  };
  started_ = absl::Now();
  auto server = StartTestCoordinator(dir_, t);
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = std::move(*server);
  channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                 grpc::InsecureChannelCredentials());
  for (int i = 0; i < devices; ++i) {
    auto key = Ed25519Key::Generate();
    ASSERT_TRUE(key.ok());
    v1::EnrollRequest req;
    req.set_token(EnrolmentToken(i));
    req.set_public_key(key->PublicRaw());
    auto resp = device::CoordinatorClient::Enroll(channel_, req, absl::Seconds(10));
    ASSERT_TRUE(resp.ok()) << resp.status();
    keys_.push_back(std::make_unique<Ed25519Key>(std::move(*key)));
    device_ids_.push_back(resp->device_id());
    clients_.push_back(std::make_unique<device::CoordinatorClient>(channel_, keys_.back().get(),
                                                                   resp->device_id()));
  }
}

std::vector<FakeResult> GrpcRoundTest::RunAll(const std::vector<Behaviour>& behaviours) {
  std::vector<FakeResult> results(behaviours.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < behaviours.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = RunFake(*clients_[i], behaviours[i], started_); });
  }
  for (auto& t : threads) t.join();
  return results;
}

RoundRecord GrpcRoundTest::Round(uint64_t round) {
  auto store = OpenStateStore(dir_);
  EXPECT_TRUE(store.ok());
  if (!store.ok()) return {};
  auto rounds = (*store)->ListRounds();
  EXPECT_TRUE(rounds.ok());
  if (rounds.ok()) {
    for (const auto& r : *rounds) {
      if (r.round == round) return r;
    }
  }
  ADD_FAILURE() << "round " << round << " is not in the store";
  return {};
}

size_t GrpcRoundTest::Charges() {
  auto store = OpenStateStore(dir_);
  EXPECT_TRUE(store.ok());
  if (!store.ok()) return 0;
  auto charges = (*store)->Charges();
  EXPECT_TRUE(charges.ok());
  return charges.ok() ? charges->size() : 0;
}

std::vector<std::string> GrpcRoundTest::Log() {
  std::lock_guard<std::mutex> l(log_mu_);
  return log_;
}

}  // namespace fedlora::coordinator::testing
