// Issue 31 hardening: one coordinator under a bounded run of hostile traffic (malformed and
// oversized bodies, unsigned, forged and stale calls, replayed signed calls, a flood of
// check-ins, download streams opened and never read), all while round 1's selection window is
// open. Afterwards the coordinator answers a health check promptly, its memory grew by less
// than a stated bound, and a real round with fake devices commits.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "fake_device_testutil.h"
#include "fedlora/coordinator/store.h"
#include "gmock/gmock.h"
#include "grpc_testutil.h"
#include "gtest/gtest.h"
#include "hostile_testutil.h"

namespace fedlora::coordinator {
namespace {

using testing::RawUnaryCall;

constexpr size_t kRssBound = 64u << 20;
const std::string kService = "/fedlora.v1.Coordinator/";

class HostileRunTest : public testing::GrpcRoundTest {
 protected:
  // Health check: true when answered SERVING within `within`.
  bool Healthy(absl::Duration within) {
    const std::string service = "fedlora.v1.Coordinator";
    std::string bytes;
    const absl::Time t0 = absl::Now();
    grpc::Status s = RawUnaryCall(channel_, "/grpc.health.v1.Health/Check",
                                  std::string("\x0a") + char(service.size()) + service, &bytes);
    return s.ok() && bytes == std::string("\x08\x01") && absl::Now() - t0 < within;
  }
};

TEST_F(HostileRunTest, CoordinatorSurvivesAbuseAndThenCommitsARound) {
  testing::TestCoordinatorOptions t;
  t.selection_window = absl::Seconds(15);  // the abuse runs inside round 1's selection window
  Start(/*goal=*/3, /*devices=*/4, t);
  // An 8 MiB release bundle for the stalled downloads: 8 private copies alone would be 64 MiB.
  {
    auto store = OpenSqliteStore(dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    ReleaseRecord big;
    big.version = 1;
    big.release_id = "big";
    big.base_model_sha256 = std::string(64, 'b');
    big.manifest_json = "{}";
    ASSERT_TRUE((*store)->PublishRelease(big, std::string(8u << 20, 'z')).ok());
  }
  const size_t rss_before = testing::RssBytes();
  ASSERT_GT(rss_before, 0u);
  auto stub = v1::Coordinator::NewStub(channel_);
  const std::string garbage = "\xff\xff\xff\xff\x0f not a protobuf";
  const std::string big(1u << 20, '\x7f');
  int refused = 0, answered = 0;
  auto count = [&](const grpc::Status& s) { s.ok() ? ++answered : ++refused; };

  // Malformed and oversized bodies to every unary method.
  for (const char* m : {"Enroll", "CheckIn", "GetRelease", "AdvertiseKeys", "ShareKeys",
                        "MaskedInput", "Unmasking"}) {
    for (int i = 0; i < 20; ++i) count(RawUnaryCall(channel_, kService + m, garbage, nullptr));
    for (int i = 0; i < 4; ++i) count(RawUnaryCall(channel_, kService + m, big, nullptr));
  }
  // Replayed signed calls: one GetRelease, then the same bytes and metadata again.
  v1::ReleaseRequest rel;
  rel.set_base_model_sha256(std::string(64, 'a'));
  const int64_t ms = testing::WallMs();
  const std::string nonce(16, 'n');
  for (int i = 0; i < 50; ++i) {
    grpc::ClientContext ctx;
    testing::SignCall(&ctx, kService + "GetRelease", device_ids_[0], *keys_[0], rel, ms, nonce);
    v1::ReleaseOffer offer;
    grpc::Status s = stub->GetRelease(&ctx, rel, &offer);
    if (i > 0) {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << i;
    }
    count(s);
  }
  // A flood of check-ins from 8 threads: unsigned, forged (another device's key) and stale.
  std::atomic<int> flood_refused{0};
  std::vector<std::thread> flood;
  for (int th = 0; th < 8; ++th) {
    flood.emplace_back([&, th] {
      auto s2 = v1::Coordinator::NewStub(channel_);
      for (int i = 0; i < 150; ++i) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        v1::CheckInRequest req;
        const size_t d = (th + i) % device_ids_.size();
        if (i % 3 == 1) {
          testing::SignCall(&ctx, kService + "CheckIn", device_ids_[d],
                            *keys_[(d + 1) % keys_.size()], req, testing::WallMs());
        } else if (i % 3 == 2) {
          testing::SignCall(&ctx, kService + "CheckIn", device_ids_[d], *keys_[d], req,
                            testing::WallMs() - 3600 * 1000);
        }
        v1::CheckInResponse resp;
        if (!s2->CheckIn(&ctx, req, &resp).ok()) flood_refused++;
      }
    });
  }
  for (auto& f : flood) f.join();
  EXPECT_EQ(flood_refused.load(), 8 * 150);
  // Download streams opened and never read, left open through the round: each device's two
  // allowed ones of the release bundle, then more (refused), and unsigned ones.
  auto lazy = v1::Coordinator::NewStub(testing::LazyChannel(server_->port()));
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::AdapterChunk>>> stalled;
  for (size_t d = 0; d < device_ids_.size(); ++d) {
    for (int k = 0; k < 2; ++k) {
      ctxs.push_back(std::make_unique<grpc::ClientContext>());
      stalled.push_back(testing::OpenDownload(*lazy, device_ids_[d], *keys_[d], 1,
                                              ctxs.back().get(), /*release=*/true));
    }
  }
  for (auto& s : stalled) s->WaitForInitialMetadata();
  for (size_t d = 0; d < device_ids_.size(); ++d) {
    for (int k = 0; k < 3; ++k) {
      ctxs.push_back(std::make_unique<grpc::ClientContext>());
      stalled.push_back(
          testing::OpenDownload(*lazy, device_ids_[d], *keys_[d], 1, ctxs.back().get()));
    }
  }
  for (int i = 0; i < 50; ++i) {
    ctxs.push_back(std::make_unique<grpc::ClientContext>());
    v1::DownloadRequest req;
    req.set_version(1);
    stalled.push_back(lazy->DownloadAdapter(ctxs.back().get(), req));
  }
  const absl::Duration abuse = absl::Now() - started_;
  ASSERT_LT(abuse, absl::Seconds(12)) << "the abuse outlasted round 1's selection window";
  EXPECT_GT(refused, 7 * 20 + 49);
  EXPECT_TRUE(Healthy(absl::Seconds(1)));

  // A real round right after: every device checks in now and takes part.
  std::vector<testing::Behaviour> b(device_ids_.size());
  for (auto& x : b) x.checkin_at = abuse;
  auto results = RunAll(b);
  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_TRUE(results[i].completed) << i << ": " << results[i].status << " " << results[i].detail;
  }
  RoundRecord r = Round(1);
  EXPECT_EQ(r.state, "committed") << r.abort_reason;
  EXPECT_TRUE(Healthy(absl::Seconds(1)));
  const size_t rss_after = testing::RssBytes();
  std::printf("RSS %zu -> %zu bytes\n", rss_before, rss_after);
  EXPECT_LT(rss_after, rss_before + kRssBound)
      << "RSS grew from " << rss_before << " to " << rss_after << " bytes";
  for (auto& c : ctxs) c->TryCancel();
  for (auto& s : stalled) s->Finish();
}

}  // namespace
}  // namespace fedlora::coordinator
