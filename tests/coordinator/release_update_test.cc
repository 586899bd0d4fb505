// Releases over the network: a real coordinator (in process, loopback) serves signed releases
// under a staged rollout; a device reports what it runs, downloads, verifies and installs what
// it is offered, goes back on a signed rollback, falls back when its health gate says so, and
// refuses hostile bundles with nothing applied.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "fedlora/common/file_util.h"
#include "fedlora/coordinator/release_rollout.h"
#include "fedlora/device/release_install.h"
#include "fedlora/device/release_update.h"
#include "fedlora/io/model_identity.h"
#include "fedlora/io/release_bundle.h"
#include "fedlora/io/release_folder.h"
#include "gmock/gmock.h"
#include "grpc_testutil.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kFixture = std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama";

class ReleaseUpdateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kFixture + "/base")) GTEST_SKIP() << "no ../shared fixture";
    root_ = ::testing::TempDir() + "/release_update_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(root_);
    testing::TestCoordinatorOptions t;
    t.tokens = 2;
    auto server = testing::StartTestCoordinator(root_ + "/coord", t);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    auto store = OpenSqliteStore(root_ + "/coord");  // a second handle, as the CLI opens it
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                       grpc::InsecureChannelCredentials());
    auto key = Ed25519Key::Generate();
    ASSERT_TRUE(key.ok());
    device_key_ = std::make_unique<Ed25519Key>(std::move(*key));
    v1::EnrollRequest req;
    req.set_token(testing::EnrolmentToken(0));
    req.set_public_key(device_key_->PublicRaw());
    auto resp = device::CoordinatorClient::Enroll(channel, req, absl::Seconds(10));
    ASSERT_TRUE(resp.ok()) << resp.status();
    device_id_ = resp->device_id();
    client_ = std::make_unique<device::CoordinatorClient>(channel, device_key_.get(), device_id_);
    auto op = Ed25519Key::Generate();
    ASSERT_TRUE(op.ok());
    operator_key_ = std::make_unique<Ed25519Key>(std::move(*op));
    trust_.Add(operator_key_->PublicRaw());
    auto sha = io::ModelSha256(kFixture + "/base");
    ASSERT_TRUE(sha.ok());
    base_sha_ = *sha;
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  // A signed release folder of the fixture adapter as `version`.
  std::string MakeRelease(uint64_t version, const Ed25519Key* key = nullptr) {
    io::CreateReleaseOptions c;
    c.adapter_dir = kFixture + "/adapter";
    c.base_model_sha256 = base_sha_;
    c.version = version;
    c.release_id = absl::StrCat("r", version);
    c.out_dir = absl::StrCat(root_, "/rel-", version);
    auto m = io::CreateRelease(c, key ? *key : *operator_key_);
    EXPECT_TRUE(m.ok()) << m.status();
    return c.out_dir;
  }

  // Publishes `dir` (or `bundle` when given) as the CLI does.
  ReleaseRecord Publish(const std::string& dir, double percent, std::string bundle = "") {
    auto m = io::ReadManifest(dir);
    EXPECT_TRUE(m.ok());
    if (bundle.empty()) {
      auto b = io::PackReleaseBundle(dir);
      EXPECT_TRUE(b.ok()) << b.status();
      bundle = *b;
    }
    ReleaseRecord r;
    r.version = m->version;
    r.release_id = m->release_id;
    r.base_model_sha256 = m->base_model_sha256;
    r.manifest_json = ManifestToJson(*m).dump();
    r.percent = percent;
    r.state = percent >= 100 ? "complete" : "rolling";
    EXPECT_TRUE(store_->PublishRelease(r, bundle).ok());
    return r;
  }

  absl::StatusOr<device::ReleaseUpdateResult> Update(
      std::function<absl::StatusOr<bool>(const std::string&, const std::string&)> gate = {}) {
    device::ReleaseUpdateOptions o;
    o.state_dir = root_ + "/dev";
    o.base_model_sha256 = base_sha_;
    o.trust = &trust_;
    o.timeout = absl::Seconds(30);
    o.health_gate = std::move(gate);
    return device::UpdateRelease(*client_, o);
  }

  uint64_t Running() {
    auto s = device::ReadReleaseState(root_ + "/dev");
    return s.ok() && s->current ? s->current->version : 0;
  }

  DeviceReleaseReport Reported() {
    // GetRelease keeps reports and writes them behind, in batches: write them now.
    EXPECT_TRUE(server_->FlushReleaseReports().ok());
    auto reports = store_->ListDeviceReleases();
    EXPECT_TRUE(reports.ok());
    for (const auto& r : *reports) {
      if (r.device_id == device_id_) return r;
    }
    return {};
  }

  std::string root_, device_id_, base_sha_;
  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Ed25519Key> device_key_, operator_key_;
  std::unique_ptr<device::CoordinatorClient> client_;
  TrustStore trust_;
};

TEST_F(ReleaseUpdateTest, StagedRolloutPromoteHaltAndSignedRollback) {
  auto first = Update();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->action, "kept");
  EXPECT_THAT(first->detail, HasSubstr("no release"));

  Publish(MakeRelease(1), 100);
  auto r1 = Update();
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(r1->action, "installed");
  EXPECT_EQ(Running(), 1u);
  EXPECT_EQ(Reported().running_version, 1u);  // the closing report reached the store
  EXPECT_FALSE(fs::exists(root_ + "/dev/downloads/release-1"));  // staging cleaned up

  // Version 2 at 0%: not offered. Promoted to just above this device's bucket: offered.
  ReleaseRecord r2 = Publish(MakeRelease(2), 0);
  auto kept = Update();
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->action, "kept");
  const double bucket = RolloutBucket(device_id_, r2.release_id);
  auto promoted = Promote(r2, std::min(100.0, bucket + 0.01));
  ASSERT_TRUE(promoted.ok());
  ASSERT_TRUE(store_->UpdateRelease(*promoted, "promote").ok());
  auto up = Update();
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(up->action, "installed");
  EXPECT_EQ(up->previous_version, 1u);
  EXPECT_EQ(Running(), 2u);

  // Halted: the device keeps version 2.
  auto halted = Halt(*promoted);
  if (halted.ok()) {  // (a device in a 100% rollout makes it complete: nothing to halt)
    ASSERT_TRUE(store_->UpdateRelease(*halted, "halt").ok());
    auto h = Update();
    ASSERT_TRUE(h.ok());
    EXPECT_EQ(h->action, "kept");
    EXPECT_EQ(Running(), 2u);
  }

  // Rolled back with the operator's signed instruction: back to version 1.
  auto all = store_->ListReleases();
  ASSERT_TRUE(all.ok());
  RollbackInstruction instr;
  instr.from_version = 2;
  instr.to_version = 1;
  instr.to_release_id = "r1";
  instr.base_model_sha256 = base_sha_;
  instr.created = "2026-11-29T00:00:00Z";
  ASSERT_TRUE(SignRollback(*operator_key_, &instr).ok());
  auto back = RollBack((*all)[1], *all, RollbackToJson(instr).dump());
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_TRUE(store_->UpdateRelease(*back, "rollback").ok());
  auto down = Update();
  ASSERT_TRUE(down.ok()) << down.status();
  EXPECT_EQ(down->action, "rolled back");
  EXPECT_EQ(Running(), 1u);
  EXPECT_EQ(Reported().running_version, 1u);
  EXPECT_EQ(Update()->action, "kept");
}

TEST_F(ReleaseUpdateTest, AFailedHealthGateFallsBackAndIsReportedAndNotOfferedAgain) {
  Publish(MakeRelease(1), 100);
  ASSERT_TRUE(Update().ok());
  Publish(MakeRelease(2), 100);
  std::string seen_prev, seen_next;
  auto r = Update([&](const std::string& prev, const std::string& next) -> absl::StatusOr<bool> {
    seen_prev = prev;
    seen_next = next;
    return false;
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->action, "fell back");
  EXPECT_EQ(r->offered_version, 2u);
  EXPECT_EQ(Running(), 1u);
  EXPECT_THAT(seen_prev, HasSubstr("releases/1"));
  EXPECT_THAT(seen_next, HasSubstr("releases/2"));
  DeviceReleaseReport rep = Reported();
  EXPECT_EQ(rep.running_version, 1u);
  EXPECT_EQ(rep.fell_back_from, 2u);
  EXPECT_EQ(Update()->action, "kept");  // the coordinator does not offer version 2 again
}

TEST_F(ReleaseUpdateTest, HostileBundlesAreRefusedAndTheRunningReleaseStays) {
  Publish(MakeRelease(1), 100);
  ASSERT_TRUE(Update().ok());
  ASSERT_EQ(Running(), 1u);

  // A flipped byte in the adapter inside the bundle: the file hash check refuses it.
  auto bundle = io::PackReleaseBundle(MakeRelease(2));
  ASSERT_TRUE(bundle.ok());
  std::string flipped = *bundle;
  flipped[flipped.size() - 10] ^= 0x01;
  Publish(absl::StrCat(root_, "/rel-2"), 100, flipped);
  auto bad = Update();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss) << bad.status();
  EXPECT_EQ(Running(), 1u);

  // A partial download that does not match the blob: discarded, nothing applied.
  ASSERT_TRUE(MakeDirs(root_ + "/dev/downloads").ok());
  ASSERT_TRUE(WriteFileAtomic(root_ + "/dev/downloads/release-2.partial", "garbage").ok());
  auto torn = Update();
  ASSERT_FALSE(torn.ok());
  EXPECT_EQ(torn.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(fs::exists(root_ + "/dev/downloads/release-2.partial"));
  EXPECT_EQ(Running(), 1u);
}

TEST_F(ReleaseUpdateTest, UnknownKeysAndPathsOutsideTheFolderAreRefused) {
  auto stranger = Ed25519Key::Generate();
  ASSERT_TRUE(stranger.ok());
  Publish(MakeRelease(1, &*stranger), 100);
  auto r = Update();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated) << r.status();
  EXPECT_EQ(Running(), 0u);

  // A bundle naming ../escape: refused before anything is written.
  std::string evil = "FLRB1\n";
  auto put32 = [&](uint32_t v) { for (int i = 0; i < 4; ++i) evil.push_back(char(v >> (8 * i))); };
  auto put64 = [&](uint64_t v) { for (int i = 0; i < 8; ++i) evil.push_back(char(v >> (8 * i))); };
  put32(1);
  const std::string path = "../escape", data = "x";
  put32(path.size());
  evil += path;
  put64(data.size());
  evil += data;
  const std::string out = root_ + "/unpack";
  absl::Status s = io::UnpackReleaseBundle(evil, out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("'..'"));
  EXPECT_FALSE(fs::exists(root_ + "/escape"));
  EXPECT_FALSE(fs::exists(out));
  // Truncated: refused too.
  auto good = io::PackReleaseBundle(absl::StrCat(root_, "/rel-1"));
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(io::UnpackReleaseBundle(good->substr(0, good->size() - 3), out).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(io::UnpackReleaseBundle(*good, out).ok());
  EXPECT_TRUE(fs::exists(out + "/manifest.json"));
}

}  // namespace
}  // namespace fedlora::coordinator
