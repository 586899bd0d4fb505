// The round's finish runs off the gRPC callback threads and off the locks that check-ins take:
// while a commit is stuck on the disk (here: another connection holds the database's write
// lock, as a slow fsync would), check-ins and release checks are still answered at once.
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include "fake_device_testutil.h"
#include "fedlora/coordinator/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

using testing::Behaviour;
using testing::FakeResult;
using testing::GrpcRoundTest;

double Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

// Another connection's write transaction on the state folder's database: every write of the
// coordinator waits for it (SQLite's busy timeout), reads do not (WAL).
class WriteLock {
 public:
  explicit WriteLock(const std::string& dir) {
    EXPECT_EQ(sqlite3_open((dir + "/coordinator.db").c_str(), &db_), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  }
  ~WriteLock() { Release(); }
  void Release() {
    if (!db_) return;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(db_);
    db_ = nullptr;
  }

 private:
  sqlite3* db_ = nullptr;
};

// Polls the round's phase until it is `phase` (false after `timeout`).
bool WaitForPhase(RoundManager& rounds, const std::string& phase, absl::Duration timeout) {
  const absl::Time until = absl::Now() + timeout;
  while (absl::Now() < until) {
    if (rounds.Current().phase == phase) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

TEST_F(GrpcRoundTest, CheckInsAndReleaseChecksAreAnsweredWhileTheRoundCommits) {
  // Devices 0-2 take part; device 3 checks in only once the round is committing.
  Start(/*goal=*/2, /*devices=*/4);
  std::vector<Behaviour> b(3);
  b[2].unmask_delay = absl::Seconds(1);  // time to take the lock before the finish starts
  auto round = std::async(std::launch::async, [&] { return RunAll(b); });
  RoundManager& rounds = server_->rounds();
  ASSERT_TRUE(WaitForPhase(rounds, "unmasking", absl::Seconds(60)));
  WriteLock lock(dir_);
  // The last unmasking message starts the finish; its writes now wait for the lock.
  ASSERT_TRUE(WaitForPhase(rounds, "committing", absl::Seconds(10)));
  const auto stuck_since = std::chrono::steady_clock::now();
  device::CoordinatorClient& probe = *clients_[3];
  double worst_checkin = 0, best_checkin = 1e9, worst_release = 0, best_release = 1e9;
  for (int i = 0; i < 3; ++i) {
    v1::CheckInRequest req;
    req.set_eligible(true);
    auto t0 = std::chrono::steady_clock::now();
    auto checkin = probe.CheckIn(req, absl::Seconds(30));
    const double checkin_ms = Ms(std::chrono::steady_clock::now() - t0);
    ASSERT_TRUE(checkin.ok()) << checkin.status();
    ASSERT_TRUE(checkin->has_rejection());
    EXPECT_EQ(checkin->rejection().reason(), v1::REJECTION_NO_ROUND_OPEN);
    EXPECT_THAT(checkin->rejection().detail(), ::testing::HasSubstr("committing"));
    EXPECT_GE(checkin->rejection().retry_min_ms(), 1000u);  // retry_min: paced, not hammered
    v1::ReleaseRequest rel;
    rel.set_running_version(7);
    t0 = std::chrono::steady_clock::now();
    auto offer = probe.GetRelease(rel, absl::Seconds(30));
    const double release_ms = Ms(std::chrono::steady_clock::now() - t0);
    ASSERT_TRUE(offer.ok()) << offer.status();
    EXPECT_FALSE(offer->offered());
    worst_checkin = std::max(worst_checkin, checkin_ms);
    best_checkin = std::min(best_checkin, checkin_ms);
    worst_release = std::max(worst_release, release_ms);
    best_release = std::min(best_release, release_ms);
  }
  // Still committing: every call above was answered while the commit could not proceed.
  EXPECT_EQ(rounds.Current().phase, "committing");
  EXPECT_LT(best_checkin, 200) << "worst " << worst_checkin << " ms";
  EXPECT_LT(worst_checkin, 1000);
  EXPECT_LT(best_release, 200) << "worst " << worst_release << " ms";
  EXPECT_LT(worst_release, 1000);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  lock.Release();
  const double stuck_ms = Ms(std::chrono::steady_clock::now() - stuck_since);

  // Once the disk is back, the round commits and every device gets its reply.
  std::vector<FakeResult> results = round.get();
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(results[i].status.ok()) << i << ": " << results[i].status;
    EXPECT_TRUE(results[i].completed) << i << ": " << results[i].detail;
  }
  ASSERT_TRUE(rounds.WaitUntilFinished(absl::Seconds(30)));
  EXPECT_EQ(Round(1).state, "committed") << Round(1).abort_reason;
  EXPECT_GE(stuck_ms, 300);
  // The release reports were kept and reach the store in one batch.
  ASSERT_TRUE(server_->FlushReleaseReports().ok());
  auto store = OpenSqliteStore(dir_);
  ASSERT_TRUE(store.ok());
  auto reports = (*store)->ListDeviceReleases();
  ASSERT_TRUE(reports.ok());
  ASSERT_EQ(reports->size(), 1u);
  EXPECT_EQ((*reports)[0].device_id, device_ids_[3]);
  EXPECT_EQ((*reports)[0].running_version, 7u);
}

// Shutdown while the finish is stuck: it waits for the commit (never cuts it short), and the
// store holds the committed round.
TEST_F(GrpcRoundTest, ShutdownWaitsForARunningCommit) {
  Start(/*goal=*/2, /*devices=*/3);
  std::vector<Behaviour> b(3);
  b[2].unmask_delay = absl::Seconds(1);
  auto round = std::async(std::launch::async, [&] { return RunAll(b); });
  ASSERT_TRUE(WaitForPhase(server_->rounds(), "unmasking", absl::Seconds(60)));
  auto lock = std::make_unique<WriteLock>(dir_);
  ASSERT_TRUE(WaitForPhase(server_->rounds(), "committing", absl::Seconds(10)));
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    lock->Release();
  });
  server_->Shutdown();
  release.join();
  round.get();
  EXPECT_EQ(Round(1).state, "committed") << Round(1).abort_reason;
}

// The store's reads (authentication's GetDevice, GetRelease's ListReleases and GetMeta) do
// not wait for a write in progress.
TEST(StoreReadsTest, ReadsDoNotWaitForAWriteInProgress) {
  const std::string dir = ::testing::TempDir() + "/store_reads_" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  auto opened = OpenSqliteStore(dir);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Store& store = **opened;
  ASSERT_TRUE(store.AddEnrollmentTokens({Sha256Hex("t")}).ok());
  DeviceRecord d;
  d.device_id = "dev-a";
  d.public_key = std::string(32, 'k');
  ASSERT_TRUE(store.EnrollDevice(Sha256Hex("t"), d).ok());
  ASSERT_TRUE(store.PutMeta("k", "v").ok());
  WriteLock lock(dir);
  // A write of this store now waits for the lock, holding the store's write mutex.
  auto writer = std::async(std::launch::async, [&] {
    return store.RecordDeviceReleases({{"dev-a", 1, 0, 0}, {"dev-a", 2, 0, 0}});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_EQ(writer.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  const auto t0 = std::chrono::steady_clock::now();
  auto device = store.GetDevice("dev-a");
  auto releases = store.ListReleases();
  auto meta = store.GetMeta("k");
  const double read_ms = Ms(std::chrono::steady_clock::now() - t0);
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_EQ(device->public_key, d.public_key);
  ASSERT_TRUE(releases.ok());
  ASSERT_TRUE(meta.ok());
  EXPECT_LT(read_ms, 200);
  lock.Release();
  ASSERT_TRUE(writer.get().ok());
  // Reads see every write that returned before them; the later report of a device wins.
  auto reports = store.ListDeviceReleases();
  ASSERT_TRUE(reports.ok());
  ASSERT_EQ(reports->size(), 1u);
  EXPECT_EQ((*reports)[0].running_version, 2u);
  EXPECT_EQ(store.RecordDeviceReleases({{"", 1, 0, 0}}).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fedlora::coordinator
