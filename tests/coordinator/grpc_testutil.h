// A coordinator for in-process gRPC tests: a state folder with an initial adapter and
// enrolment tokens "token-0", "token-1", ..., and an insecure loopback server for one round.
#ifndef FEDLORA_TESTS_COORDINATOR_GRPC_TESTUTIL_H_
#define FEDLORA_TESTS_COORDINATOR_GRPC_TESTUTIL_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/coordinator/coordinator_server.h"

namespace fedlora::coordinator::testing {

struct TestCoordinatorOptions {
  int goal = 2;        // expected cohort (noise calibration, the mean's denominator)
  int devices = 3;     // population
  int tokens = 5;      // enrolment tokens created
  size_t dim = 1000;   // adapter values (0.01 each)
  double sampling_rate = 1;  // Poisson q of each check-in's coin
  int max_cohort = 0;        // 0 = devices (q = 1 samples them all)
  double min_survivors = 0.5;
  // Fixed from the round's opening (the server's start for round 1).
  absl::Duration selection_window = absl::Seconds(1);
  std::function<void(const std::string&)> log;  // the coordinator's log lines (optional)
  absl::Duration download_timeout = absl::Seconds(120);
  proto::SecAggGraph graph = proto::SECAGG_GRAPH_KREGULAR;
  // The run's LoRA method and server optimizer; `slots` (A values, B values per slot, adding
  // up to dim) is the initial adapter's layout, which ffa and fedsa need.
  LoraMethod lora_method = LoraMethod::kLora;
  ServerOptimizerConfig optimizer;
  std::vector<std::pair<uint64_t, uint64_t>> slots;
  int max_rounds = 1;
  int max_shard_size = 0;  // 0 = one secure-aggregation session per round
  // "" = SQLite in the folder; else a multi-host folder whose `store` file names this
  // PostgreSQL database (StartTestCoordinator then takes the leader lease).
  std::string store_conninfo;
  int max_streams_per_connection = 0;  // 0 = ServiceLimits' default
};

std::string EnrolmentToken(int i);

// The options StartTestCoordinator serves `dir` with (to start another server on it).
ServerOptions TestServerOptions(const std::string& dir, const TestCoordinatorOptions& options);

// Creates `dir` afresh and starts the server (distributed DP, Poisson sampling at
// options.sampling_rate, z = 1, clip 1, 20 bits, one round, 3 s phase deadlines).
absl::StatusOr<std::unique_ptr<CoordinatorServer>> StartTestCoordinator(
    const std::string& dir, const TestCoordinatorOptions& options);

// A unary call with raw request bytes (for malformed messages and services without generated
// stubs in this build, e.g. grpc.health.v1). Waits at most 10 s.
grpc::Status RawUnaryCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                          const std::string& request, std::string* response);

}  // namespace fedlora::coordinator::testing

#endif  // FEDLORA_TESTS_COORDINATOR_GRPC_TESTUTIL_H_
