// The network coordinator runs what the simulator runs in process: FFA-LoRA and FedSA-LoRA
// (only the method's shared values are summed; the rest of the global adapter stays as
// initialised) and FedAdam, whose moments are committed with every adapter version and
// restored after a restart, or refused with DATA_LOSS when damaged, never reset to zero.
#include <filesystem>
#include <fstream>

#include "fake_device_testutil.h"
#include "fedlora/common/adapter_blob.h"
#include "fedlora/common/lora_method.h"
#include "fedlora/privacy/params_wire.h"
#include "gmock/gmock.h"

namespace fedlora::coordinator::testing {
namespace {

using ::testing::HasSubstr;

// Two slots of (A 200, B 50) values: kFakeDim = 500, A 400, B 100.
const std::vector<std::pair<uint64_t, uint64_t>> kSlots = {{200, 50}, {200, 50}};

AdapterBlob Latest(const std::string& dir) {
  auto store = OpenSqliteStore(dir);
  EXPECT_TRUE(store.ok()) << store.status();
  auto latest = (*store)->LatestAdapter();
  EXPECT_TRUE(latest.ok()) << latest.status();
  auto blob = DecodeAdapterBlob(*(*store)->ReadBlob(latest->sha256));
  EXPECT_TRUE(blob.ok()) << blob.status();
  return *blob;
}

// What each of `results` was asked to send under `method`, and sent.
void CheckTasks(const std::vector<FakeResult>& results, LoraMethod method, size_t shared) {
  for (const auto& r : results) {
    EXPECT_TRUE(r.completed) << r.status << " " << r.detail;
    EXPECT_EQ(static_cast<int>(r.task.lora_method()), static_cast<int>(method));
    auto params = privacy::ParamsFromProto(r.task.privacy());
    ASSERT_TRUE(params.ok()) << params.status();
    EXPECT_EQ(params->dim, shared);  // the secure-aggregation vector is the shared values only
    EXPECT_EQ(r.sent_dim, r.task.secagg().dim());
  }
}

class LoraMethodRoundTest : public GrpcRoundTest {
 protected:
  // Runs one round of three honest fakes; returns the committed adapter.
  AdapterBlob OneRound(TestCoordinatorOptions t, LoraMethod method, size_t shared) {
    t.lora_method = method;
    t.slots = kSlots;
    t.goal = t.devices = t.tokens = 3;  // as Start sets them: what a restart must repeat
    t.dim = kFakeDim;
    used_ = t;
    Start(/*goal=*/3, /*devices=*/3, t);
    if (HasFatalFailure()) return {};
    results_ = RunAll(std::vector<Behaviour>(3));
    CheckTasks(results_, method, shared);
    EXPECT_TRUE(server_->rounds().WaitUntilFinished(absl::Seconds(30)));
    EXPECT_EQ(Round(1).state, "committed") << Round(1).abort_reason;
    return Latest(dir_);
  }
  std::vector<FakeResult> results_;
  TestCoordinatorOptions used_;  // the options of the round's server
};

TEST_F(LoraMethodRoundTest, FfaSumsOnlyBAndLeavesAAtItsInit) {
  const AdapterBlob blob = OneRound({}, LoraMethod::kFfa, /*shared=*/100);
  ASSERT_EQ(blob.values.size(), kFakeDim);
  EXPECT_EQ(blob.slots, kSlots);  // the layout is carried into every version
  for (const auto& r : results_) EXPECT_LT(r.sent_dim, kFakeDim);  // half the upload or less
  auto b = BPositions(blob);
  ASSERT_TRUE(b.ok());
  std::vector<bool> is_b(blob.values.size(), false);
  for (size_t i : *b) is_b[i] = true;
  int b_moved = 0;
  for (size_t i = 0; i < blob.values.size(); ++i) {
    if (!is_b[i]) {
      ASSERT_EQ(blob.values[i], 0.01f) << "A moved at " << i;
    } else {
      b_moved += blob.values[i] != 0.01f;
    }
  }
  EXPECT_GT(b_moved, 50);
}

TEST_F(LoraMethodRoundTest, FedsaSumsOnlyAAndKeepsTheGlobalB) {
  const AdapterBlob blob = OneRound({}, LoraMethod::kFedSa, /*shared=*/400);
  ASSERT_EQ(blob.values.size(), kFakeDim);
  auto b = BPositions(blob);
  ASSERT_TRUE(b.ok());
  std::vector<bool> is_b(blob.values.size(), false);
  for (size_t i : *b) is_b[i] = true;
  int a_moved = 0;
  for (size_t i = 0; i < blob.values.size(); ++i) {
    if (is_b[i]) {
      ASSERT_EQ(blob.values[i], 0.01f) << "the global B moved at " << i;
    } else {
      a_moved += blob.values[i] != 0.01f;
    }
  }
  EXPECT_GT(a_moved, 200);
}

// The restart itself: a second server on the same folder resumes from the stored moments,
// and a damaged or missing moments blob stops it with DATA_LOSS.
TEST_F(LoraMethodRoundTest, FedAdamMomentsAreCommittedWithTheVersionAndRestored) {
  TestCoordinatorOptions t;
  t.optimizer.kind = ServerOptimizerKind::kFedAdam;
  OneRound(t, LoraMethod::kFfa, 100);
  server_->Shutdown();
  server_.reset();

  std::string state, sha;
  {
    auto store = OpenSqliteStore(dir_);
    ASSERT_TRUE(store.ok());
    auto s = (*store)->OptimizerState();
    ASSERT_TRUE(s.ok()) << s.status();
    state = *s;
    sha = Sha256Hex(state);
  }
  // One line of JSON, then m and v of the 100 shared values as float64.
  const size_t nl = state.find('\n');
  ASSERT_NE(nl, std::string::npos);
  EXPECT_THAT(state.substr(0, nl), HasSubstr("\"server_optimizer\":\"fedadam\""));
  EXPECT_EQ(state.size() - nl - 1, 16u * 100);

  t = used_;
  std::vector<std::string> lines;
  ServerOptions o = TestServerOptions(dir_, t);
  o.coordinator.log = [&lines](const std::string& l) { lines.push_back(l); };
  {
    auto again = CoordinatorServer::Start(o);
    ASSERT_TRUE(again.ok()) << again.status();
    (*again)->Shutdown();
  }
  EXPECT_THAT(::testing::PrintToString(lines), HasSubstr("resumed at adapter version 2"));

  const std::string blob_path = dir_ + "/blobs/" + sha;
  ASSERT_TRUE(std::filesystem::exists(blob_path));
  std::filesystem::permissions(blob_path, std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::add);
  {
    std::string damaged = state;
    damaged[nl + 5] ^= 0x40;  // one bit of m
    std::ofstream(blob_path, std::ios::binary | std::ios::trunc) << damaged;
  }
  auto damaged = CoordinatorServer::Start(o);
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss) << damaged.status();
  EXPECT_THAT(damaged.status().message(), HasSubstr("server-optimizer moments"));

  std::filesystem::remove(blob_path);
  auto missing = CoordinatorServer::Start(o);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kDataLoss) << missing.status();
}

// A different method or server optimizer than the one pinned at init is refused.
TEST_F(LoraMethodRoundTest, TheMethodAndOptimizerArePinned) {
  TestCoordinatorOptions t;
  t.optimizer.kind = ServerOptimizerKind::kFedYogi;
  OneRound(t, LoraMethod::kFedSa, 400);
  server_->Shutdown();
  server_.reset();
  t = used_;
  t.lora_method = LoraMethod::kFfa;
  auto other_method = CoordinatorServer::Start(TestServerOptions(dir_, t));
  ASSERT_FALSE(other_method.ok());
  EXPECT_EQ(other_method.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(other_method.status().message(), HasSubstr("lora_method \"fedsa\" -> \"ffa\""));
  t.lora_method = LoraMethod::kFedSa;
  t.optimizer.kind = ServerOptimizerKind::kFedAvg;
  auto other_optimizer = CoordinatorServer::Start(TestServerOptions(dir_, t));
  ASSERT_FALSE(other_optimizer.ok());
  EXPECT_THAT(other_optimizer.status().message(), HasSubstr("server_optimizer removed"));
  t.optimizer.kind = ServerOptimizerKind::kFedYogi;  // as pinned: runs
  auto same = CoordinatorServer::Start(TestServerOptions(dir_, t));
  ASSERT_TRUE(same.ok()) << same.status();
  (*same)->Shutdown();
}

}  // namespace
}  // namespace fedlora::coordinator::testing
