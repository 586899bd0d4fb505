// The coin every process computes alike (selection_coin.h), the leader's published window and
// its charge when coins were flipped at an edge (selection_window.h), and what an edge answers
// by itself from a published window (edge_rounds.h), all on a fake clock without a network.
#include <filesystem>
#include <map>
#include <optional>

#include "fedlora/common/random.h"
#include "fedlora/coordinator/edge_rounds.h"
#include "fedlora/coordinator/selection_coin.h"
#include "fedlora/coordinator/window_publisher.h"
#include "gmock/gmock.h"
#include "grpc_testutil.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

using ::testing::HasSubstr;

std::string Key(uint8_t fill) { return std::string(kCoinKeyBytes, static_cast<char>(fill)); }

// Within 6 standard deviations of a Binomial(n, p) mean.
void ExpectBinomial(int hits, int n, double p) {
  const double sd = std::sqrt(n * p * (1 - p));
  EXPECT_NEAR(hits, n * p, 6 * sd) << hits << " of " << n << " at p " << p;
}

TEST(SelectionCoinTest, SameKeyRoundAndDeviceGiveTheSameCoinAndTheRateIsQ) {
  const std::string key = Key(7);
  const int n = 20000;
  const double q = 0.1;
  int selected = 0, both_rounds = 0, other_key = 0;
  for (int i = 0; i < n; ++i) {
    const std::string device = "device-" + std::to_string(i);
    const double u = CoinUniform(key, 5, device);
    ASSERT_GE(u, 0);
    ASSERT_LT(u, 1);
    EXPECT_EQ(u, CoinUniform(key, 5, device));  // a retry, another process: the same coin
    const bool s = CoinSelected(key, 5, device, q);
    EXPECT_EQ(s, u < q);
    selected += s;
    both_rounds += s && CoinSelected(key, 6, device, q);
    other_key += s && CoinSelected(Key(8), 5, device, q);
  }
  ExpectBinomial(selected, n, q);
  // Another round (or key): independent coins, so both are true at rate q^2.
  ExpectBinomial(both_rounds, n, q * q);
  ExpectBinomial(other_key, n, q * q);
  EXPECT_TRUE(CoinSelected(key, 1, "x", 1.0));
  EXPECT_FALSE(CoinSelected(key, 1, "x", 0.0));
}

TEST(SelectionWindowTest, JsonRoundTripsAndRefusesAnUnknownState) {
  SelectionWindow w;
  w.round = 3;
  w.state = "selecting";
  w.opened_ms = 1000;
  w.end_ms = 5000;
  w.q = 0.25;
  w.coin_key = Key(1);
  w.leader = "10.0.0.1:50051";
  w.leader_tls = false;
  auto back = SelectionWindowFromJson(SelectionWindowToJson(w));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->coin_key, w.coin_key);
  EXPECT_EQ(back->leader, w.leader);
  EXPECT_FALSE(back->leader_tls);
  EXPECT_EQ(back->end_ms, 5000);
  w.state = "maybe";
  EXPECT_EQ(SelectionWindowFromJson(SelectionWindowToJson(w)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SelectionWindowFromJson("{}").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SelectionWindowTest, TheAdvertisedLeaderAddressIsTheFlagOrTheBoundListenAddress) {
  EXPECT_EQ(AdvertisedAddress("db1.lan:50051", "0.0.0.0:0", 4321), "db1.lan:50051");
  EXPECT_EQ(AdvertisedAddress("", "10.0.0.5:0", 4321), "10.0.0.5:4321");
  EXPECT_EQ(AdvertisedAddress("", "0.0.0.0:50051", 50051), "127.0.0.1:50051");
  EXPECT_EQ(AdvertisedAddress("", "[::]:50051", 50051), "127.0.0.1:50051");
}

// A RoundManager on a fake clock (no Start: driven by Tick), with the publication hook.
class LeaderWindowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/leader_window_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    auto store = OpenSqliteStore(dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    AdapterBlob blob;
    blob.lora = {{"peft_type", "LORA"}, {"r", 8}, {"lora_alpha", 16}, {"target_modules", {"q_proj"}}};
    blob.values.assign(100, 0.01f);
    ASSERT_TRUE(store_->PutInitialAdapter(EncodeAdapterBlob(blob)).ok());
    metrics_ = std::make_unique<MetricsRegistry>();
    DefineCoordinatorMetrics(*metrics_);
  }
  CoordinatorOptions Options(double q) {
    testing::TestCoordinatorOptions t;
    t.devices = 1000;
    t.goal = 300;
    t.max_cohort = 1000;
    t.sampling_rate = q;
    t.selection_window = absl::Seconds(4);
    CoordinatorOptions o = testing::TestServerOptions(dir_, t).coordinator;
    o.clock = [this] { return now_; };
    o.allow_seeded_rng = true;
    o.publish_window = [this](const SelectionWindow& w) { published_.push_back(w); };
    return o;
  }
  std::string dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<MetricsRegistry> metrics_;
  SeededRandom rng_{42};
  absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
  std::vector<SelectionWindow> published_;
};

TEST_F(LeaderWindowTest, TheLeadersCoinIsTheOneAnEdgeComputesFromThePublishedWindow) {
  const double q = 0.3;
  auto rounds = RoundManager::Create(Options(q), store_.get(), metrics_.get(), &rng_);
  ASSERT_TRUE(rounds.ok()) << rounds.status();
  ASSERT_FALSE(published_.empty());
  const SelectionWindow w = published_.back();
  EXPECT_EQ(w.state, "selecting");
  EXPECT_EQ(w.round, 1u);
  EXPECT_EQ(w.q, q);
  EXPECT_EQ(w.coin_key.size(), kCoinKeyBytes);
  EXPECT_EQ(w.end_ms - w.opened_ms, 4000);
  now_ += absl::Seconds(1);
  std::map<std::string, std::optional<v1::CheckInResponse>> replies;
  int sampled = 0;
  for (int i = 0; i < 400; ++i) {
    const std::string device = "device-" + std::to_string(i);
    v1::CheckInRequest req;
    req.set_eligible(true);
    replies[device] = std::nullopt;
    (*rounds)->CheckIn(device, req, [&replies, device](absl::Status s, v1::CheckInResponse r) {
      EXPECT_TRUE(s.ok()) << s;
      replies[device] = r;
    });
    // Sampled devices wait for the window's end; the others are answered NOT_SELECTED now.
    const bool edge_says = CoinSelected(w.coin_key, w.round, device, w.q);
    sampled += edge_says;
    EXPECT_EQ(!replies[device].has_value(), edge_says) << device;
    if (replies[device]) {
      EXPECT_EQ(replies[device]->rejection().reason(), v1::REJECTION_NOT_SELECTED);
    }
  }
  EXPECT_GT(sampled, 0);
  // The window closes (the sample is below the minimum: aborted, charged): round 2's window
  // is published with a new key, and every sampled device has its answer.
  now_ += absl::Seconds(4);
  (*rounds)->Tick(now_);
  EXPECT_EQ(published_.back().round, 2u);
  EXPECT_EQ(published_.back().state, "selecting");
  EXPECT_NE(published_.back().coin_key, w.coin_key);
  for (const auto& [device, reply] : replies) EXPECT_TRUE(reply.has_value()) << device;
}

// No device reached the leader in the window, but an edge flipped coins in it: the round is
// charged and aborted (whether anyone was sampled is private); without the edge's record the
// same round opens a new window, nothing charged.
TEST_F(LeaderWindowTest, AWindowWithCoinsFlippedOnlyAtEdgesIsChargedNotRestarted) {
  for (bool flipped_elsewhere : {false, true}) {
    if (flipped_elsewhere) SetUp();
    CoordinatorOptions o = Options(0.3);
    InstallWindowPublisher(&o, store_.get(), std::make_shared<std::string>("127.0.0.1:1"), false);
    auto rounds = RoundManager::Create(o, store_.get(), metrics_.get(), &rng_);
    ASSERT_TRUE(rounds.ok()) << rounds.status();
    auto w = SelectionWindowFromJson(*store_->GetMeta(kSelectionWindowKey));
    ASSERT_TRUE(w.ok()) << w.status();
    if (flipped_elsewhere) {
      ASSERT_TRUE(store_->PutMeta(CoinsFlippedKey(w->round), std::to_string(w->opened_ms)).ok());
    }
    now_ += absl::Seconds(5);
    (*rounds)->Tick(now_);
    auto charges = store_->Charges();
    ASSERT_TRUE(charges.ok());
    EXPECT_EQ(charges->size(), flipped_elsewhere ? 1u : 0u);
    EXPECT_EQ((*rounds)->Current().round, flipped_elsewhere ? 2u : 1u);
    auto next = SelectionWindowFromJson(*store_->GetMeta(kSelectionWindowKey));
    ASSERT_TRUE(next.ok());
    EXPECT_EQ(next->state, "selecting");
    EXPECT_GT(next->opened_ms, w->opened_ms);
    EXPECT_EQ(next->leader, "127.0.0.1:1");
    // The same round restarted keeps its coins; a new round gets a new key.
    EXPECT_EQ(next->coin_key == w->coin_key, !flipped_elsewhere);
    rounds->reset();
    store_.reset();
  }
}

class EdgeDecideTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/edge_decide_" + std::to_string(getpid());
    std::filesystem::remove_all(dir_);
    auto store = OpenSqliteStore(dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    DefineEdgeMetrics(metrics_);
    EdgeRoundsOptions o;
    o.clock = [this] { return now_; };
    edge_ = std::make_unique<EdgeRounds>(store_.get(), &metrics_, o);
    w_.round = 7;
    w_.state = "selecting";
    w_.opened_ms = absl::ToUnixMillis(now_);
    w_.end_ms = w_.opened_ms + 10000;
    w_.q = 0.5;
    w_.coin_key = Key(3);
    w_.retry_min_ms = 1000;
    w_.retry_max_ms = 10000;
    w_.base_model_sha256 = "abc";
    w_.leader = "127.0.0.1:1";
  }
  v1::CheckInResponse Answer(const std::string& device, bool eligible = true,
                             const std::string& base = "abc") {
    v1::CheckInRequest req;
    req.set_eligible(eligible);
    req.set_base_model_sha256(base);
    auto r = edge_->Decide(device, req, now_);
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r.ok() && r->has_value()) << device << " was forwarded";
    return r.ok() && r->has_value() ? **r : v1::CheckInResponse();
  }
  std::string dir_;
  std::unique_ptr<Store> store_;
  MetricsRegistry metrics_;
  absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
  std::unique_ptr<EdgeRounds> edge_;
  SelectionWindow w_;
};

TEST_F(EdgeDecideTest, AnswersWhatTheLeaderWouldRejectAndForwardsOnlySampledDevices) {
  // Nothing published yet: no round open, retry within the leader's default 1-10 s.
  EXPECT_EQ(Answer("d").rejection().reason(), v1::REJECTION_NO_ROUND_OPEN);
  EXPECT_EQ(edge_->Poll().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store_->PutMeta(kSelectionWindowKey, SelectionWindowToJson(w_)).ok());
  ASSERT_TRUE(edge_->Poll().ok());
  now_ += absl::Seconds(1);
  EXPECT_EQ(Answer("d", /*eligible=*/false).rejection().reason(), v1::REJECTION_TOO_FEW_EXAMPLES);
  const auto mismatch = Answer("d", true, "other");
  EXPECT_EQ(mismatch.rejection().reason(), v1::REJECTION_BASE_MISMATCH);
  EXPECT_GE(mismatch.rejection().retry_min_ms(), 24u * 3600 * 1000);
  // No coin record before the first coin.
  EXPECT_EQ(store_->GetMeta(CoinsFlippedKey(7)).status().code(), absl::StatusCode::kNotFound);
  int forwarded = 0, not_selected = 0;
  for (int i = 0; i < 200; ++i) {
    const std::string device = "device-" + std::to_string(i);
    v1::CheckInRequest req;
    req.set_eligible(true);
    req.set_base_model_sha256("abc");
    auto r = edge_->Decide(device, req, now_);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(!r->has_value(), CoinSelected(w_.coin_key, 7, device, 0.5)) << device;
    if (r->has_value()) {
      EXPECT_EQ((*r)->rejection().reason(), v1::REJECTION_NOT_SELECTED);
      ++not_selected;
    } else {
      ++forwarded;
    }
  }
  EXPECT_GT(forwarded, 0);
  EXPECT_GT(not_selected, 0);
  // The coin record names this window, written before the first coin was answered.
  auto record = store_->GetMeta(CoinsFlippedKey(7));
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(*record, std::to_string(w_.opened_ms));
  // Coin outcomes are counted together only (their numbers apart are private).
  EXPECT_EQ(metrics_.Value("fedlora_edge_checkins_total", {"coin"}), 200);
  EXPECT_EQ(metrics_.Value("fedlora_rejections_total", {"REJECTION_NOT_SELECTED"}), 0);
  EXPECT_EQ(metrics_.Value("fedlora_rejections_total", {"REJECTION_TOO_FEW_EXAMPLES"}), 1);
  // Within the closing margin (200 ms) of the window's end: no coin.
  now_ = absl::FromUnixMillis(w_.end_ms) - absl::Milliseconds(100);
  EXPECT_THAT(Answer("device-0").rejection().detail(), HasSubstr("has closed"));
}

TEST_F(EdgeDecideTest, ClosedAndFinishedWindowsArePaceSteeredLikeTheLeader) {
  w_.state = "closed";
  w_.retry_after_ms = absl::ToUnixMillis(now_ + absl::Seconds(30));
  edge_->SetWindow(w_);
  const auto closed = Answer("d");
  EXPECT_EQ(closed.rejection().reason(), v1::REJECTION_NO_ROUND_OPEN);
  EXPECT_EQ(closed.rejection().retry_min_ms(), 30000u);  // when the round should be over
  EXPECT_EQ(closed.rejection().retry_max_ms(), 39000u);  // + retry_max - retry_min
  w_.state = "finished";
  w_.detail = "the privacy budget is spent";
  edge_->SetWindow(w_);
  const auto finished = Answer("d");
  EXPECT_EQ(finished.rejection().reason(), v1::REJECTION_BUDGET_EXHAUSTED);
  EXPECT_THAT(finished.rejection().detail(), HasSubstr("budget"));
  EXPECT_EQ(store_->GetMeta(CoinsFlippedKey(7)).status().code(), absl::StatusCode::kNotFound);
}

// The leader opens the next window the moment a round commits; a device checking in again at
// once must get a coin, not be sent away until the round "should be over" by the closed window
// this edge read before the commit: a check-in the held window would turn away reads it again
// (when the held one is at least reread_after old).
TEST_F(EdgeDecideTest, ATurnAwayFromAStaleClosedWindowReadsTheNextWindowFirst) {
  w_.state = "closed";
  w_.retry_after_ms = absl::ToUnixMillis(now_ + absl::Seconds(120));
  ASSERT_TRUE(store_->PutMeta(kSelectionWindowKey, SelectionWindowToJson(w_)).ok());
  ASSERT_TRUE(edge_->Poll().ok());
  EXPECT_EQ(Answer("d").rejection().retry_min_ms(), 120000u);  // read just now: as held
  // The round commits and the leader publishes round 8's window, between two polls.
  SelectionWindow next = w_;
  next.round = 8;
  next.state = "selecting";
  next.q = 1e-9;  // every coin false: the answer says which window it came from
  next.opened_ms = absl::ToUnixMillis(now_ + absl::Milliseconds(40));
  next.end_ms = next.opened_ms + 10000;
  ASSERT_TRUE(store_->PutMeta(kSelectionWindowKey, SelectionWindowToJson(next)).ok());
  now_ += absl::Milliseconds(60);
  const auto fresh = Answer("d");
  EXPECT_EQ(fresh.rejection().reason(), v1::REJECTION_NOT_SELECTED) << fresh.DebugString();
  EXPECT_THAT(fresh.rejection().detail(), HasSubstr("round 8"));
  // An answer within the window's coin time reads nothing: the store's window changing now
  // does not reach this edge until its poller reads it.
  ASSERT_TRUE(store_->PutMeta(kSelectionWindowKey, SelectionWindowToJson(w_)).ok());
  now_ += absl::Seconds(1);
  EXPECT_THAT(Answer("d").rejection().detail(), HasSubstr("round 8"));
}

}  // namespace
}  // namespace fedlora::coordinator
