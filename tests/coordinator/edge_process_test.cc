// Edge processes against a real PostgreSQL (issue 30): a leader and two edges in this process,
// each a real gRPC server on loopback, devices spread over the edges. A round commits through
// the edges; rejected check-ins never reach the leader; a replayed check-in gets the same answer
// from the other edge (no second coin) and, when sampled, is refused by the leader itself; the
// leader down, an edge answers UNAVAILABLE and the device's retry gets through to the next
// leader. (Killing an edge behind HAProxy is the cluster tests' part.)
#if FEDLORA_HAVE_POSTGRESQL
#include <grpcpp/generic/generic_stub.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <thread>

#include "fake_device_testutil.h"
#include "fedlora/common/call_signature.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/random.h"
#include "fedlora/coordinator/edge_server.h"
#include "fedlora/coordinator/selection_coin.h"
#include "fedlora/coordinator/state_folder.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store_testutil.h"
#include "testutil/process.h"

namespace fedlora::coordinator {
namespace {

using testing::Behaviour;
using testing::FakeResult;
using ::testing::HasSubstr;

constexpr char kCheckIn[] = "/fedlora.v1.Coordinator/CheckIn";

// A device's signed CheckIn as bytes and metadata, to send (and replay) as is.
struct SignedCheckIn {
  std::string body;
  std::map<std::string, std::string> metadata;
};

SignedCheckIn Sign(const Ed25519Key& key, const std::string& device) {
  v1::CheckInRequest req;
  req.set_eligible(true);
  SignedCheckIn c;
  c.body = req.SerializeAsString();
  SecureRandom rng;
  std::string nonce(16, '\0');
  rng.Fill(reinterpret_cast<uint8_t*>(nonce.data()), nonce.size());
  const int64_t ms = absl::ToUnixMillis(absl::Now());
  auto sig = key.Sign(CallSigningBytes(kCheckIn, device, ms, nonce, c.body));
  EXPECT_TRUE(sig.ok());
  c.metadata = {{kCallDeviceMetadataKey, device},
                {kCallTimeMetadataKey, std::to_string(ms)},
                {kCallNonceMetadataKey, HexEncode(nonce)},
                {kCallSignatureMetadataKey, HexEncode(sig.ok() ? *sig : "")}};
  return c;
}

grpc::Status Send(int port, const SignedCheckIn& c, v1::CheckInResponse* out) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                     grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::Slice slice(c.body);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext ctx;
  for (const auto& [k, v] : c.metadata) ctx.AddMetadata(k, v);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&ctx, kCheckIn, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
    std::lock_guard<std::mutex> l(mu);
    status = s;
    done = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> l(mu);
  cv.wait(l, [&] { return done; });
  if (status.ok()) {
    std::vector<grpc::Slice> slices;
    (void)response.Dump(&slices);
    std::string bytes;
    for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    EXPECT_TRUE(out->ParseFromString(bytes));
  }
  return status;
}

class EdgeProcessTest : public ::testing::Test {
 protected:
  // A multi-host folder on a fresh database, its leader, `edges` edges, `devices` devices
  // enrolled through the edges in turn (device i talks to edge i % edges).
  void Start(int goal, int devices, double q, int edges) {
    auto& pg = testing::SharedPostgres();
    ASSERT_TRUE(pg.ok()) << pg.error();
    t_.goal = goal;
    t_.devices = devices;
    t_.tokens = devices;
    t_.dim = testing::kFakeDim;
    t_.sampling_rate = q;
    t_.selection_window = window_;
    t_.graph = proto::SECAGG_GRAPH_COMPLETE;
    t_.store_conninfo = pg.ConnInfo(pg.CreateDatabase());
    t_.max_streams_per_connection = leader_streams_;
    dir_ = ::testing::TempDir() + "/edge_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    started_ = absl::Now();
    auto leader = testing::StartTestCoordinator(dir_, t_);
    ASSERT_TRUE(leader.ok()) << leader.status();
    leader_ = std::move(*leader);
    for (int e = 0; e < edges; ++e) {
      EdgeServerOptions o;
      o.state_dir = dir_;
      o.listen = "127.0.0.1:0";
      o.insecure = true;
      if (edge_streams_ > 0) o.rounds.forward_streams_per_connection = edge_streams_;
      auto edge = EdgeServer::Start(o);
      ASSERT_TRUE(edge.ok()) << edge.status();
      edges_.push_back(std::move(*edge));
    }
    for (int i = 0; i < devices; ++i) {
      auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(Edge(i).port()),
                                         grpc::InsecureChannelCredentials());
      auto key = Ed25519Key::Generate();
      ASSERT_TRUE(key.ok());
      v1::EnrollRequest req;
      req.set_token(testing::EnrolmentToken(i));
      req.set_public_key(key->PublicRaw());
      auto resp = device::CoordinatorClient::Enroll(channel, req, absl::Seconds(10));
      ASSERT_TRUE(resp.ok()) << resp.status();
      keys_.push_back(std::make_unique<Ed25519Key>(std::move(*key)));
      ids_.push_back(resp->device_id());
      clients_.push_back(std::make_unique<device::CoordinatorClient>(channel, keys_.back().get(),
                                                                     resp->device_id()));
    }
  }
  EdgeServer& Edge(int device) { return *edges_[device % edges_.size()]; }
  std::unique_ptr<Store> Observer() {
    auto s = OpenStateStore(dir_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
  SelectionWindow Window() {
    auto w = SelectionWindowFromJson(*Observer()->GetMeta(kSelectionWindowKey));
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? *w : SelectionWindow();
  }
  double LeaderCheckIns() {
    return leader_->metrics().Value("fedlora_bytes_received_total", {"CheckIn"});
  }

  int leader_streams_ = 0, edge_streams_ = 0;  // 0 = the defaults
  absl::Duration window_ = absl::Seconds(4);
  testing::TestCoordinatorOptions t_;
  std::string dir_;
  absl::Time started_;
  std::unique_ptr<CoordinatorServer> leader_;
  std::vector<std::unique_ptr<EdgeServer>> edges_;
  std::vector<std::unique_ptr<Ed25519Key>> keys_;
  std::vector<std::string> ids_;
  std::vector<std::unique_ptr<device::CoordinatorClient>> clients_;
};

TEST_F(EdgeProcessTest, ARoundCommitsWithItsDevicesSpreadOverTwoEdges) {
  Start(/*goal=*/2, /*devices=*/4, /*q=*/1, /*edges=*/2);
  std::vector<FakeResult> results(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { results[i] = RunFake(*clients_[i], Behaviour(), started_); });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(results[i].completed) << i << ": " << results[i].status << " "
                                      << results[i].detail << " " << results[i].rejection;
  }
  ASSERT_TRUE(leader_->rounds().WaitUntilFinished(absl::Seconds(30)));
  auto rounds = Observer()->ListRounds();
  ASSERT_TRUE(rounds.ok());
  ASSERT_EQ(rounds->size(), 1u);
  EXPECT_EQ((*rounds)[0].state, "committed") << (*rounds)[0].abort_reason;
  EXPECT_EQ((*rounds)[0].summed, 4);
  // Every device's secure aggregation went through its own edge.
  for (auto& edge : edges_) {
    EXPECT_EQ(edge->metrics().Value("fedlora_edge_forwarded_total", {"AdvertiseKeys"}), 2);
    EXPECT_EQ(edge->metrics().Value("fedlora_edge_checkins_total", {"coin"}), 2);
  }
}

// Every sampled device behind one edge waits at the leader (for the window's end, then for each
// phase to close) at the same time: more than one connection's worth of streams. The edge
// spreads them over more connections, so none waits behind the leader's per-connection limit.
TEST_F(EdgeProcessTest, MoreWaitingDevicesThanOneConnectionsStreamsAllGetThrough) {
  leader_streams_ = 4;  // the leader's limit per connection (default 32)
  edge_streams_ = 3;    // what the edge puts on one connection (default 16)
  Start(/*goal=*/4, /*devices=*/10, /*q=*/1, /*edges=*/1);
  std::vector<FakeResult> results(10);
  std::vector<std::thread> threads;
  for (int i = 0; i < 10; ++i) {
    threads.emplace_back([&, i] { results[i] = RunFake(*clients_[i], Behaviour(), started_); });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(results[i].completed) << i << ": " << results[i].status << " "
                                      << results[i].detail << " " << results[i].rejection;
  }
  ASSERT_TRUE(leader_->rounds().WaitUntilFinished(absl::Seconds(30)));
  auto rounds = Observer()->ListRounds();
  ASSERT_TRUE(rounds.ok());
  ASSERT_FALSE(rounds->empty());
  EXPECT_EQ((*rounds)[0].state, "committed") << (*rounds)[0].abort_reason;
  EXPECT_EQ((*rounds)[0].summed, 10);
}

TEST_F(EdgeProcessTest, RejectedCheckInsNeverReachTheLeaderAndAReplayGetsTheSameCoin) {
  Start(/*goal=*/2, /*devices=*/3, /*q=*/1e-6, /*edges=*/2);
  const SelectionWindow w = Window();
  ASSERT_EQ(w.state, "selecting");
  for (int i = 0; i < 3; ++i) ASSERT_FALSE(CoinSelected(w.coin_key, w.round, ids_[i], w.q));
  v1::CheckInRequest eligible, ineligible;
  eligible.set_eligible(true);
  for (int i = 0; i < 3; ++i) {
    for (int k = 0; k < 2; ++k) {
      auto r = clients_[i]->CheckIn(eligible, absl::Seconds(10));
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->rejection().reason(), v1::REJECTION_NOT_SELECTED);
    }
    auto r = clients_[i]->CheckIn(ineligible, absl::Seconds(10));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->rejection().reason(), v1::REJECTION_TOO_FEW_EXAMPLES);
  }
  // The same signed bytes and metadata: the edge that saw them refuses the replay; the other
  // edge (which shares no replay state) gives the same coin's answer.
  const SignedCheckIn call = Sign(*keys_[0], ids_[0]);
  v1::CheckInResponse first, again, other;
  ASSERT_TRUE(Send(edges_[0]->port(), call, &first).ok());
  EXPECT_EQ(first.rejection().reason(), v1::REJECTION_NOT_SELECTED);
  const grpc::Status replay = Send(edges_[0]->port(), call, &again);
  EXPECT_EQ(replay.error_code(), grpc::StatusCode::UNAUTHENTICATED) << replay.error_message();
  ASSERT_TRUE(Send(edges_[1]->port(), call, &other).ok());
  EXPECT_EQ(other.rejection().reason(), first.rejection().reason());
  EXPECT_EQ(other.rejection().detail(), first.rejection().detail());
  // None of it reached the leader.
  EXPECT_EQ(LeaderCheckIns(), 0);
  EXPECT_EQ(leader_->metrics().Value("fedlora_rejections_total", {"REJECTION_TOO_FEW_EXAMPLES"}), 0);
  double rejected = 0;
  for (auto& e : edges_) rejected += e->metrics().Value("fedlora_edge_checkins_total", {"rejected"});
  EXPECT_EQ(rejected, 3);
}

TEST_F(EdgeProcessTest, ASampledCheckInReplayedToTheOtherEdgeIsRefusedByTheLeader) {
  Start(/*goal=*/2, /*devices=*/2, /*q=*/1, /*edges=*/2);
  const SignedCheckIn call = Sign(*keys_[0], ids_[0]);
  grpc::Status waited;
  v1::CheckInResponse first;
  std::thread t([&] { waited = Send(edges_[0]->port(), call, &first); });
  absl::SleepFor(absl::Milliseconds(500));  // the first is waiting at the leader for the window
  v1::CheckInResponse second;
  const grpc::Status replay = Send(edges_[1]->port(), call, &second);
  EXPECT_EQ(replay.error_code(), grpc::StatusCode::UNAUTHENTICATED) << replay.error_message();
  EXPECT_THAT(replay.error_message(), HasSubstr("replay"));
  t.join();
  // One device in the window: the leader aborted the round (charged), and said so.
  ASSERT_TRUE(waited.ok()) << waited.error_message();
  EXPECT_THAT(first.rejection().detail(), HasSubstr("fewer than the minimum"));
}

TEST_F(EdgeProcessTest, LeaderDownTheEdgeSaysUnavailableAndTheRetryReachesTheNextLeader) {
  Start(/*goal=*/2, /*devices=*/2, /*q=*/1, /*edges=*/1);  // device 1 stays silent
  leader_->Shutdown();
  leader_.reset();
  v1::CheckInRequest req;
  req.set_eligible(true);
  auto down = clients_[0]->CheckIn(req, absl::Seconds(10));
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable) << down.status();
  EXPECT_THAT(down.status().message(), HasSubstr("leader"));
  auto next = CoordinatorServer::Start(testing::TestServerOptions(dir_, t_));
  ASSERT_TRUE(next.ok()) << next.status();
  leader_ = std::move(*next);
  absl::StatusOr<v1::CheckInResponse> retry = down.status();
  const absl::Time until = absl::Now() + absl::Seconds(20);
  while (!retry.ok() && retry.status().code() == absl::StatusCode::kUnavailable &&
         absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(200));
    retry = clients_[0]->CheckIn(req, absl::Seconds(20));
  }
  ASSERT_TRUE(retry.ok()) << retry.status();
  // The new leader answered: one device sampled in its window is below the minimum.
  EXPECT_THAT(retry->rejection().detail(), HasSubstr("fewer than the minimum"));
  EXPECT_GT(LeaderCheckIns(), 0);
}

// An edge stopping while a sampled device waits at the leader (for the window's end) answers
// the device at once (CANCELLED, which devices retry) instead of holding it, and stops.
TEST_F(EdgeProcessTest, AnEdgeStoppingAnswersTheDevicesItForwardedAtOnce) {
  window_ = absl::Seconds(20);
  Start(/*goal=*/2, /*devices=*/2, /*q=*/1, /*edges=*/1);
  v1::CheckInRequest req;
  req.set_eligible(true);
  absl::StatusOr<v1::CheckInResponse> waited;
  absl::Time answered;
  std::thread t([&] {
    waited = clients_[0]->CheckIn(req, absl::Seconds(60));
    answered = absl::Now();
  });
  absl::SleepFor(absl::Milliseconds(500));  // forwarded, waiting at the leader
  const absl::Time stop = absl::Now();
  edges_[0]->Shutdown();
  EXPECT_LT(absl::Now() - stop, absl::Seconds(5));
  t.join();
  ASSERT_FALSE(waited.ok());
  EXPECT_LT(answered - stop, absl::Seconds(5)) << waited.status();
  EXPECT_LT(answered, started_ + window_);
}

// The command itself: `fedlora coordinator edge` as its own process answers a device beside an
// in-process leader and stops cleanly on SIGTERM with its counts in --json.
TEST_F(EdgeProcessTest, TheEdgeCommandServesAndStopsCleanlyOnSigterm) {
  Start(/*goal=*/2, /*devices=*/2, /*q=*/1e-6, /*edges=*/1);
  const int port = fedlora::testing::FreeLoopbackPort();
  ChildProcess edge = fedlora::testing::StartFedlora(
      {"coordinator", "edge", "--state", dir_, "--listen", "127.0.0.1:" + std::to_string(port),
       "--metrics", "", "--insecure", "--json"},
      dir_ + "/cli_edge");
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                     grpc::InsecureChannelCredentials());
  device::CoordinatorClient client(channel, keys_[1].get(), ids_[1]);
  v1::CheckInRequest ineligible;
  absl::StatusOr<v1::CheckInResponse> r = absl::UnavailableError("not yet");
  for (int i = 0; i < 100 && !r.ok() && edge.Running(); ++i) {
    r = client.CheckIn(ineligible, absl::Seconds(5));
    if (!r.ok()) absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(r.ok()) << r.status() << " " << edge.Err();
  EXPECT_EQ(r->rejection().reason(), v1::REJECTION_TOO_FEW_EXAMPLES);
  edge.Kill(SIGTERM);
  EXPECT_EQ(edge.Wait(20), 0) << edge.Err();
  EXPECT_THAT(edge.Out(), HasSubstr("\"role\":\"edge\""));
  EXPECT_THAT(edge.Out(), HasSubstr("\"checkins_rejected\":1"));
  EXPECT_EQ(LeaderCheckIns(), 0);
}

TEST(EdgeServerTest, ASingleHostFolderIsRefusedWithAHint) {
  const std::string dir = ::testing::TempDir() + "/edge_sqlite_" + std::to_string(getpid());
  testing::TestCoordinatorOptions t;
  auto leader = testing::StartTestCoordinator(dir, t);
  ASSERT_TRUE(leader.ok()) << leader.status();
  EdgeServerOptions o;
  o.state_dir = dir;
  o.listen = "127.0.0.1:0";
  o.insecure = true;
  auto edge = EdgeServer::Start(o);
  EXPECT_EQ(edge.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(edge.status().message(), HasSubstr("multi-host"));
}

}  // namespace
}  // namespace fedlora::coordinator
#endif  // FEDLORA_HAVE_POSTGRESQL
