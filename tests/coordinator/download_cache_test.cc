// Issue 31 hardening, downloads: all streams of one adapter version share one in-memory copy of
// its blob (read from the store and verified once, freed when the last stream ends), and the
// per-device and total stream limits are checked before anything is read from the store.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <thread>

#include "fedlora/coordinator/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hostile_testutil.h"

namespace fedlora::coordinator {
namespace {

using testing::HostileTest;
using testing::RssBytes;

constexpr char kCacheBytes[] = "fedlora_download_cache_bytes";
constexpr char kBlobReads[] = "fedlora_download_blob_reads_total";

class DownloadCacheTest : public HostileTest {
 protected:
  uint64_t BlobBytes() {
    auto store = OpenSqliteStore(dir_);
    EXPECT_TRUE(store.ok()) << store.status();
    if (!store.ok()) return 0;
    auto latest = (*store)->LatestAdapter();
    EXPECT_TRUE(latest.ok()) << latest.status();
    if (latest.ok()) sha_ = latest->sha256;
    return latest.ok() ? latest->bytes : 0;
  }
  std::string sha_;  // the latest adapter's, set by BlobBytes
  double Metric(const char* name) { return server_->metrics().Value(name); }
  // Waits up to 5 s for the cache to hold `bytes`.
  bool WaitCacheBytes(double bytes) {
    for (int i = 0; i < 100 && Metric(kCacheBytes) != bytes; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return Metric(kCacheBytes) == bytes;
  }
};

// 10 devices x 2 streams of an 8 MB adapter, none read: one copy in memory, one store read.
TEST_F(DownloadCacheTest, ConcurrentStreamsOfOneVersionShareOneCopy) {
  Start(2, 10, /*dim=*/2000000);
  const uint64_t blob = BlobBytes();
  ASSERT_GT(blob, 4u << 20);
  auto stub = v1::Coordinator::NewStub(LazyChannel());
  const size_t rss_before = RssBytes();
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::AdapterChunk>>> readers;
  for (const auto& phone : phones_) {
    for (int k = 0; k < 2; ++k) {
      ctxs.push_back(std::make_unique<grpc::ClientContext>());
      readers.push_back(OpenDownload(*stub, phone, 1, ctxs.back().get()));
    }
  }
  // Every stream is running: each has its first chunk waiting.
  for (auto& r : readers) r->WaitForInitialMetadata();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(Metric(kBlobReads), 1);
  EXPECT_EQ(Metric(kCacheBytes), static_cast<double>(blob));
  // 20 private copies would be 160 MB; one copy and 20 chunks in flight stay well under 5.
  const size_t rss_open = RssBytes();
  EXPECT_LT(rss_open, rss_before + 5 * blob)
      << "RSS grew from " << rss_before << " to " << rss_open << " with 20 streams of " << blob;
  // When the last stream ends, the copy is freed; the next download reads the store again.
  for (auto& c : ctxs) c->TryCancel();
  for (auto& r : readers) r->Finish();
  EXPECT_TRUE(WaitCacheBytes(0)) << Metric(kCacheBytes);
  auto again = Client(phones_[0])->Download(1, sha_, dir_ + "/again", absl::Seconds(30));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->size(), blob);
  EXPECT_EQ(Metric(kBlobReads), 2);
  EXPECT_TRUE(WaitCacheBytes(0));
}

// A device at its stream limit is refused before its request is looked up in the store: asking
// for a version that does not exist answers RESOURCE_EXHAUSTED, not NOT_FOUND, and reads nothing.
TEST_F(DownloadCacheTest, DeviceOverItsStreamLimitIsRefusedBeforeAnyRead) {
  Start(2, 3, /*dim=*/400000);
  auto stub = v1::Coordinator::NewStub(LazyChannel());
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::AdapterChunk>>> readers;
  for (int k = 0; k < 2; ++k) {
    ctxs.push_back(std::make_unique<grpc::ClientContext>());
    readers.push_back(OpenDownload(*stub, phones_[0], 1, ctxs.back().get()));
    readers.back()->WaitForInitialMetadata();
  }
  EXPECT_EQ(Metric(kBlobReads), 1);
  grpc::ClientContext over_ctx;
  auto over = OpenDownload(*stub, phones_[0], 99, &over_ctx);
  v1::AdapterChunk chunk;
  EXPECT_FALSE(over->Read(&chunk));
  grpc::Status s = over->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("hint"));
  EXPECT_EQ(Metric(kBlobReads), 1);
  // Another device is not affected: its unknown version is NOT_FOUND.
  grpc::ClientContext other_ctx;
  auto other = OpenDownload(*stub, phones_[1], 99, &other_ctx);
  EXPECT_FALSE(other->Read(&chunk));
  EXPECT_EQ(other->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  for (auto& c : ctxs) c->TryCancel();
  for (auto& r : readers) r->Finish();
}

}  // namespace
}  // namespace fedlora::coordinator
