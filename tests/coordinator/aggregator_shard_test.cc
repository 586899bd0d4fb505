// Sharded rounds whose shards run in aggregator processes (multi-host, PostgreSQL; the
// fixture of shard_round_testutil.h): the same sum as one session when the shards run in two
// aggregators; an aggregator killed during masked input drops its shard only; a RunShard from
// a fenced-out leader is refused, and so is one without the leader's credential (no MAC,
// another folder's key, a MAC over other fields), before it starts anything.
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "fedlora/common/encoding.h"
#include "fedlora/coordinator/aggregator_server.h"
#include "fedlora/coordinator/cluster_key.h"
#include "fedlora/coordinator/state_folder.h"
#include "fedlora/proto/fedlora_v1.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shard_round_testutil.h"
#include "shard_spec_testutil.h"
#include "store_testutil.h"
#include "testutil/process.h"

namespace fedlora::coordinator {
namespace {

using testing::Behaviour;
using testing::FakeResult;
using testing::ShardRoundTest;

#if FEDLORA_HAVE_POSTGRESQL
// The leader on PostgreSQL; aggregators in this process (AggregatorServer) or as `fedlora
// coordinator aggregator` processes. 3 shards over 2 aggregators: round robin over the sorted
// addresses gives the first shards 0 and 2, the second shard 1.
class AggregatorShardTest : public ShardRoundTest {
 protected:
  void StartOnPostgres(int rounds = 1) {
    auto& pg = testing::SharedPostgres();
    ASSERT_TRUE(pg.ok()) << pg.error();
    testing::TestCoordinatorOptions t;
    t.store_conninfo = pg.ConnInfo(pg.CreateDatabase());
    t.selection_window = absl::Seconds(8);  // the aggregators register meanwhile
    t.max_rounds = rounds;
    StartSharded(t);
    device::ChannelOptions dial;
    dial.insecure = true;
    for (auto& c : clients_) c->set_channel_options(dial);
  }
  void StartInProcessAggregators(int n) {
    for (int i = 0; i < n; ++i) {
      AggregatorServerOptions o;
      o.state_dir = dir_;
      o.listen = "127.0.0.1:0";
      o.insecure = true;
      auto a = AggregatorServer::Start(o);
      ASSERT_TRUE(a.ok()) << a.status();
      aggregators_.push_back(std::move(*a));
    }
  }
  // A RunShard of round `round`, shard `shard` for 3 made-up devices, at the current epoch
  // unless `epoch` is given.
  v1::RunShardRequest ShardRequest(uint64_t round, uint32_t shard, uint64_t epoch = 0) {
    const ShardSpec spec =
        ThreeDeviceShard(round, shard, absl::Seconds(30), absl::Seconds(30));
    v1::RunShardRequest req = ShardSpecToProto(spec);
    req.set_population("global");
    if (epoch == 0) {
      auto lease = OpenLeaderLease(*StateStoreConninfo(dir_), "global");
      EXPECT_TRUE(lease.ok()) << lease.status();
      if (lease.ok()) {
        auto current = (*lease)->Current();
        EXPECT_TRUE(current.ok()) << current.status();
        if (current.ok()) epoch = current->epoch;
      }
    }
    req.set_epoch(epoch);
    return req;
  }
  // Sends `req` to `address` with `mac` (none: no credential) in the call's metadata.
  static grpc::Status SendRunShard(const std::string& address, const v1::RunShardRequest& req,
                                   const std::optional<std::string>& mac) {
    auto stub = v1::Aggregator::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    v1::RunShardResponse resp;
    grpc::ClientContext ctx;
    if (mac) ctx.AddMetadata(kLeaderMacMetadata, *mac);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    return stub->RunShard(&ctx, req, &resp);
  }
  std::string FolderKey() {
    auto key = ReadClusterKey(dir_);
    EXPECT_TRUE(key.ok()) << key.status();
    return key.value_or("");
  }
  // The in-process leader's log lines (GrpcRoundTest collects them).
  std::string LeaderLog() {
    std::lock_guard<std::mutex> l(log_mu_);
    std::string all;
    for (const std::string& line : log_) all += line + "\n";
    return all;
  }

  double LeaderSecAggBytes() {
    return server_->metrics().Value("fedlora_bytes_received_total", {"AdvertiseKeys"}) +
           server_->metrics().Value("fedlora_bytes_received_total", {"MaskedInput"});
  }
  // Every device checks in again from now (the next round's window) and takes part.
  std::vector<FakeResult> NextRound() {
    started_ = absl::Now();
    Behaviour again;
    again.checkin_at = absl::ZeroDuration();
    again.checkins = 200;
    return RunAll(std::vector<Behaviour>(9, again));
  }

 public:
  const std::string& dir() const { return dir_; }
  absl::Time started() const { return started_; }
  std::vector<FakeResult> Run(const std::vector<Behaviour>& b) { return RunAll(b); }
  std::string Phase() { return server_->rounds().Current().phase; }
  std::vector<ChildProcess>& procs() { return procs_; }

 protected:
  std::vector<std::unique_ptr<AggregatorServer>> aggregators_;
  std::vector<ChildProcess> procs_;  // aggregator processes (SIGKILLed at the end)
};

TEST_F(AggregatorShardTest, TwoAggregatorsRunTheShardsAndTheRoundCommitsTheOneSessionAdapter) {
  StartOnPostgres();
  StartInProcessAggregators(2);
  auto results = RunAll(std::vector<Behaviour>(9));
  std::set<std::string> addresses;
  for (const FakeResult& r : results) {
    EXPECT_TRUE(r.status.ok()) << r.status;
    EXPECT_TRUE(r.completed) << r.detail;
    addresses.insert(r.task.aggregator_address());
  }
  ExpectShardedTasks(results);
  EXPECT_EQ(addresses, (std::set<std::string>{aggregators_[0]->address(),
                                              aggregators_[1]->address()}));
  ExpectAllNineCommittedAsOneSession(results);
  // No secure-aggregation message reached the leader; the aggregators summed all 3 shards.
  EXPECT_EQ(LeaderSecAggBytes(), 0);
  double summed = 0;
  for (auto& a : aggregators_) {
    summed += a->metrics().Value("fedlora_aggregator_shards_total", {"summed"});
    EXPECT_GT(a->metrics().Value("fedlora_bytes_received_total", {"MaskedInput"}), 0);
  }
  EXPECT_EQ(summed, 3);
}

// A leader stopping while its shards run at aggregators gives them up at once instead of
// waiting out their deadlines (train 10 s + 4 x 3 s here).
TEST_F(AggregatorShardTest, ALeaderStoppingDuringARemoteRoundStopsAtOnce) {
  StartOnPostgres();
  StartInProcessAggregators(1);
  Behaviour silent;
  silent.stop_before = 0;  // takes the task, never speaks: the shards wait for deadlines
  std::vector<FakeResult> results;
  std::thread devices([&] { results = RunAll(std::vector<Behaviour>(9, silent)); });
  const absl::Time until = absl::Now() + absl::Seconds(30);
  while (server_->rounds().Current().phase != "committing" && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(server_->rounds().Current().phase, "committing");
  const absl::Time stop = absl::Now();
  server_->Shutdown();
  EXPECT_LT(absl::Now() - stop, absl::Seconds(5));
  devices.join();
  EXPECT_EQ(Round(1).state, "aborted");
  EXPECT_TRUE(Round(1).charged);
}

TEST_F(AggregatorShardTest, NoLiveAggregatorRunsTheShardsAtTheLeader) {
  StartOnPostgres();
  auto results = RunAll(std::vector<Behaviour>(9));
  for (const FakeResult& r : results) {
    EXPECT_TRUE(r.completed) << r.detail;
    EXPECT_EQ(r.task.aggregator_address(), "");
  }
  ASSERT_TRUE(server_->rounds().WaitUntilFinished(absl::Seconds(30)));
  EXPECT_EQ(Round(1).state, "committed");
  EXPECT_GT(LeaderSecAggBytes(), 0);
}

// Two `fedlora coordinator aggregator` processes; kill -9 of one of them while its devices are
// in masked input (`victim` 0: the one running shards 0 and 2; 1: shard 1). Returns the
// devices' results; addresses_ holds the aggregators' addresses, sorted.
std::vector<FakeResult> KillAnAggregatorDuringMaskedInput(AggregatorShardTest& t, int victim,
                                                          std::vector<std::string>* addresses) {
  std::vector<ChildProcess>& procs = t.procs();  // the survivor outlives this function
  for (int i = 0; i < 2; ++i) {
    const int port = fedlora::testing::FreeLoopbackPort();
    procs.push_back(fedlora::testing::StartFedlora(
        {"coordinator", "aggregator", "--state", t.dir(), "--listen",
         "127.0.0.1:" + std::to_string(port), "--insecure", "--metrics", ""},
        t.dir() + "/aggregator" + std::to_string(i)));
    addresses->push_back("127.0.0.1:" + std::to_string(port));
  }
  for (auto& p : procs) EXPECT_NE(p.WaitForLine("registered as", 20), "") << p.Err();
  EXPECT_LT(absl::Now() - t.started(), absl::Seconds(7)) << "too slow to register in the window";
  const std::vector<std::string> started = *addresses;
  std::sort(addresses->begin(), addresses->end());
  ChildProcess& killed = started[0] == (*addresses)[victim] ? procs[0] : procs[1];
  Behaviour slow;
  slow.masked_delay = absl::Milliseconds(2000);  // under the 3 s phase deadline
  std::vector<FakeResult> results;
  std::thread devices([&] { results = t.Run(std::vector<Behaviour>(9, slow)); });
  // All shards remote: the leader waits in "committing" from the tasks on.
  const absl::Time until = absl::Now() + absl::Seconds(30);
  while (t.Phase() != "committing" && absl::Now() < until) absl::SleepFor(absl::Milliseconds(20));
  absl::SleepFor(absl::Milliseconds(900));  // keys advertised and shared; masked input pending
  killed.Kill(SIGKILL);
  devices.join();
  for (const FakeResult& r : results) {
    EXPECT_EQ(r.task.aggregator_address(), (*addresses)[r.task.shard() % 2]);
    const bool lost = static_cast<int>(r.task.shard() % 2) == victim;
    EXPECT_EQ(r.completed, !lost) << "shard " << r.task.shard() << ": " << r.detail;
    // The lost shards' devices lost their aggregator in masked input (their call failed there).
    if (lost) {
      EXPECT_THAT(r.detail, ::testing::HasSubstr("masked_input"));
    }
  }
  return results;
}

// Shard 1 lost: the round commits from shards 0 and 2 (6 >= the round's 5), one charge; the
// next round runs on the surviving aggregator alone and commits; one ledger entry a round.
TEST_F(AggregatorShardTest, AnAggregatorKilledDuringMaskedInputDropsOnlyItsShard) {
  StartOnPostgres(/*rounds=*/2);
  std::vector<std::string> addresses;
  KillAnAggregatorDuringMaskedInput(*this, /*victim=*/1, &addresses);
  // Round 2: the killed aggregator's heartbeat goes stale; the other runs every shard.
  for (const FakeResult& r : NextRound()) {
    EXPECT_TRUE(r.completed) << r.detail;
    EXPECT_EQ(r.task.aggregator_address(), addresses[0]);
  }
  ASSERT_TRUE(server_->rounds().WaitUntilFinished(absl::Seconds(60)));
  const RoundRecord first = Round(1);
  EXPECT_EQ(first.state, "committed") << first.abort_reason;
  EXPECT_EQ(first.summed, 6);
  EXPECT_EQ(Round(2).state, "committed") << Round(2).abort_reason;
  EXPECT_EQ(Charges(), 2u);
  // The cluster key signed every RunShard here; it is in no process's log.
  const std::string key = FolderKey();
  std::string logs = LeaderLog();
  EXPECT_THAT(logs, ::testing::HasSubstr("round 2"));  // the leader's log was read
  for (auto& p : procs()) logs += p.Out() + p.Err();
  EXPECT_THAT(logs, ::testing::HasSubstr("registered as"));  // and the aggregators' logs
  EXPECT_THAT(logs, ::testing::Not(::testing::HasSubstr(HexEncode(key))));
  EXPECT_THAT(logs, ::testing::Not(::testing::HasSubstr(absl::AsciiStrToUpper(HexEncode(key)))));
  EXPECT_THAT(logs, ::testing::Not(::testing::HasSubstr(key)));
}

// Shards 0 and 2 lost: shard 1's 3 survivors are under the round's 5: aborted, charged; the
// next round commits; one ledger entry a round.
TEST_F(AggregatorShardTest, LosingTooManyShardsToAKilledAggregatorAbortsCharged) {
  StartOnPostgres(/*rounds=*/1);
  std::vector<std::string> addresses;
  KillAnAggregatorDuringMaskedInput(*this, /*victim=*/0, &addresses);
  for (const FakeResult& r : NextRound()) {
    EXPECT_TRUE(r.completed) << r.detail;
    EXPECT_EQ(r.task.aggregator_address(), addresses[1]);
  }
  ASSERT_TRUE(server_->rounds().WaitUntilFinished(absl::Seconds(60)));
  const RoundRecord first = Round(1);
  EXPECT_EQ(first.state, "aborted");
  EXPECT_TRUE(first.charged);
  EXPECT_FALSE(testing::HasDigit(first.abort_reason)) << first.abort_reason;
  EXPECT_EQ(Round(2).state, "committed") << Round(2).abort_reason;
  EXPECT_EQ(Charges(), 2u);
}

TEST_F(AggregatorShardTest, ARunShardWithAStaleEpochIsRefused) {
  StartOnPostgres();
  StartInProcessAggregators(1);
  const std::string key = FolderKey();
  const std::string& address = aggregators_[0]->address();
  // Signed with the population's key, but from a leader fenced out by a successor.
  v1::RunShardRequest stale = ShardRequest(99, 0);
  stale.set_epoch(stale.epoch() - 1);
  grpc::Status refused = SendRunShard(address, stale, *RunShardMac(key, stale));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << refused.error_message();
  EXPECT_THAT(refused.error_message(), ::testing::HasSubstr("fenced"));
  EXPECT_EQ(aggregators_[0]->rounds().running(), 0);
  // The current epoch's shard is taken (it runs until its devices' deadlines).
  const v1::RunShardRequest fresh = ShardRequest(99, 1);
  grpc::Status taken = SendRunShard(address, fresh, *RunShardMac(key, fresh));
  EXPECT_EQ(taken.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << taken.error_message();
  EXPECT_EQ(aggregators_[0]->rounds().running(), 1);
}

// Before the leader hands out round 1's shards, someone who reaches the aggregators' port
// tries to take their (round, shard) slots at the current epoch: without a MAC, with a MAC
// under another folder's cluster key, and with a MAC of the population's key made for other
// fields (one device id swapped). Each is refused UNAUTHENTICATED before any session starts;
// the leader's own RunShards for those slots then run and the round commits.
TEST_F(AggregatorShardTest, RunShardsWithoutTheLeadersCredentialAreRefusedAndStartNothing) {
  StartOnPostgres();
  StartInProcessAggregators(2);
  const std::string other_folder = dir_ + "_other";
  std::filesystem::create_directories(other_folder);
  ASSERT_TRUE(CreateClusterKey(other_folder).ok());
  const std::string other_key = *ReadClusterKey(other_folder);
  std::filesystem::remove_all(other_folder);
  const std::string key = FolderKey();
  ASSERT_NE(key, other_key);
  for (auto& a : aggregators_) {
    for (uint32_t shard = 0; shard < 3; ++shard) {
      const v1::RunShardRequest forged = ShardRequest(1, shard);
      v1::RunShardRequest signed_one = forged;
      signed_one.set_devices(1, "someone-else");
      const std::vector<std::pair<const char*, std::optional<std::string>>> attempts = {
          {"no MAC", std::nullopt},
          {"another folder's key", *RunShardMac(other_key, forged)},
          {"a MAC over other fields", *RunShardMac(key, signed_one)}};
      for (const auto& [what, mac] : attempts) {
        grpc::Status s = SendRunShard(a->address(), forged, mac);
        EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED)
            << what << ": " << s.error_message();
        EXPECT_THAT(s.error_message(), ::testing::HasSubstr("leader credential")) << what;
      }
    }
    EXPECT_EQ(a->rounds().running(), 0);
    EXPECT_EQ(a->metrics().Value("fedlora_aggregator_shards_total", {"unauthenticated"}), 9);
    EXPECT_EQ(a->metrics().Value("fedlora_aggregator_shards_total", {"refused"}), 0);
  }
  ASSERT_LT(absl::Now() - started(), absl::Seconds(7)) << "too slow: the window closed";
  auto results = RunAll(std::vector<Behaviour>(9));
  for (const FakeResult& r : results) EXPECT_TRUE(r.completed) << r.detail;
  ASSERT_TRUE(server_->rounds().WaitUntilFinished(absl::Seconds(30)));
  EXPECT_EQ(Round(1).state, "committed") << Round(1).abort_reason;
  EXPECT_EQ(Round(1).summed, 9);
  double summed = 0;
  for (auto& a : aggregators_) {
    summed += a->metrics().Value("fedlora_aggregator_shards_total", {"summed"});
  }
  EXPECT_EQ(summed, 3);
}

// An aggregator whose state folder has another cluster.key than the leader's (a copy from
// another population, or a key re-drawn on one host) refuses every RunShard of the leader:
// its shards are dropped, the round aborts charged, and the leader's log says which
// aggregator refused and what to copy where.
TEST_F(AggregatorShardTest, AnAggregatorWithAnotherKeyRefusesTheLeaderWhichSaysWhatToDo) {
  StartOnPostgres();
  const std::string other = dir_ + "_other";
  std::filesystem::remove_all(other);
  std::filesystem::create_directories(other);
  std::filesystem::copy_file(dir_ + "/" + kStoreFile, other + "/" + kStoreFile);
  ASSERT_TRUE(CreateClusterKey(other).ok());
  AggregatorServerOptions o;
  o.state_dir = other;
  o.listen = "127.0.0.1:0";
  o.insecure = true;
  auto agg = AggregatorServer::Start(o);
  ASSERT_TRUE(agg.ok()) << agg.status();
  aggregators_.push_back(std::move(*agg));
  auto results = RunAll(std::vector<Behaviour>(9));
  for (const FakeResult& r : results) {
    EXPECT_EQ(r.task.aggregator_address(), aggregators_[0]->address());
    EXPECT_FALSE(r.completed);
  }
  // Round 1 ends (the devices' calls were refused at the aggregator, so round 1 is over by
  // the time they return, or soon after: the leader got the refusals at once).
  const absl::Time until = absl::Now() + absl::Seconds(30);
  while (Round(1).state == "running" && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(Round(1).state, "aborted");
  EXPECT_TRUE(Round(1).charged);
  EXPECT_EQ(Charges(), 1u);
  EXPECT_EQ(aggregators_[0]->metrics().Value("fedlora_aggregator_shards_total",
                                             {"unauthenticated"}),
            3);
  EXPECT_EQ(aggregators_[0]->rounds().running(), 0);
  EXPECT_THAT(LeaderLog(), ::testing::HasSubstr("aggregator " + aggregators_[0]->address() +
                                                " refused shard 0 of round 1"));
  EXPECT_THAT(LeaderLog(), ::testing::HasSubstr("copy the leader's folder's cluster.key"));
  aggregators_.clear();
  std::filesystem::remove_all(other);
}

// A multi-host folder made before leader credentials has no cluster.key: aggregators and
// leaders refuse to start, naming the command that adds one; once added they start.
TEST_F(AggregatorShardTest, AFolderWithoutAClusterKeyIsRefusedUntilOneIsAdded) {
  StartOnPostgres();
  std::filesystem::remove(dir_ + "/" + kClusterKeyFile);
  AggregatorServerOptions o;
  o.state_dir = dir_;
  o.listen = "127.0.0.1:0";
  o.insecure = true;
  auto agg = AggregatorServer::Start(o);
  EXPECT_EQ(agg.status().code(), absl::StatusCode::kFailedPrecondition) << agg.status();
  EXPECT_THAT(agg.status().message(),
              ::testing::HasSubstr("fedlora coordinator cluster-key --state " + dir_));
  // A second coordinator: refused for the key before it would wait on the lease.
  auto leader = CoordinatorServer::Start(testing::TestServerOptions(dir_, {}));
  EXPECT_EQ(leader.status().code(), absl::StatusCode::kFailedPrecondition) << leader.status();
  EXPECT_THAT(leader.status().message(), ::testing::HasSubstr("coordinator cluster-key"));
  ASSERT_TRUE(CreateClusterKey(dir_).ok());
  agg = AggregatorServer::Start(o);
  EXPECT_TRUE(agg.ok()) << agg.status();
}
#endif  // FEDLORA_HAVE_POSTGRESQL

}  // namespace
}  // namespace fedlora::coordinator
