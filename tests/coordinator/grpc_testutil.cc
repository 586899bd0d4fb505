#include "grpc_testutil.h"

#include <grpcpp/generic/generic_stub.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "fedlora/common/adapter_blob.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/coordinator/cluster_key.h"
#include "fedlora/coordinator/state_folder.h"

namespace fedlora::coordinator::testing {

std::string EnrolmentToken(int i) { return "token-" + std::to_string(i); }

absl::StatusOr<std::unique_ptr<CoordinatorServer>> StartTestCoordinator(
    const std::string& dir, const TestCoordinatorOptions& t) {
  std::filesystem::remove_all(dir);
  if (!t.store_conninfo.empty()) {
    std::filesystem::create_directories(dir);
    FEDLORA_RETURN_IF_ERROR(WriteFileAtomic(dir + "/" + kStoreFile, t.store_conninfo));
    FEDLORA_RETURN_IF_ERROR(CreateClusterKey(dir));
  }
  {
    FEDLORA_ASSIGN_OR_RETURN(auto store, OpenStateStore(dir));
    AdapterBlob blob;
    blob.lora = {{"peft_type", "LORA"}, {"r", 8}, {"lora_alpha", 16},
                 {"target_modules", {"q_proj"}}};
    blob.values.assign(t.dim, 0.01f);
    blob.slots = t.slots;
    FEDLORA_RETURN_IF_ERROR(store->PutInitialAdapter(EncodeAdapterBlob(blob)).status());
    std::vector<std::string> hashes;
    for (int i = 0; i < t.tokens; ++i) hashes.push_back(HexEncode(Sha256(EnrolmentToken(i))));
    FEDLORA_RETURN_IF_ERROR(store->AddEnrollmentTokens(hashes));
  }
  return CoordinatorServer::Start(TestServerOptions(dir, t));
}

ServerOptions TestServerOptions(const std::string& dir, const TestCoordinatorOptions& t) {
  ServerOptions o;
  o.state_dir = dir;
  o.listen = "127.0.0.1:0";
  o.insecure = true;
  o.limits.download_timeout = t.download_timeout;
  if (t.max_streams_per_connection > 0) {
    o.limits.max_streams_per_connection = t.max_streams_per_connection;
  }
  CoordinatorOptions& c = o.coordinator;
  c.recipe.mode = privacy::DpMode::kDistributed;
  c.recipe.sampling = privacy::Sampling::kPoisson;
  c.recipe.population = t.devices;
  c.recipe.expected_cohort = t.goal;
  c.recipe.poisson_rate = t.sampling_rate;
  c.recipe.max_cohort = t.max_cohort > 0 ? t.max_cohort : std::max(t.devices, t.goal);
  c.recipe.noise_multiplier = 1;
  c.recipe.clip = 1;
  c.recipe.bits = 20;
  c.recipe.min_survivors = t.min_survivors;
  c.recipe.max_shard_size = t.max_shard_size;
  c.recipe.delta = 1e-5;
  c.selection_window = t.selection_window;
  c.log = t.log;
  c.phase_deadline = absl::Seconds(3);
  c.train_deadline = absl::Seconds(10);
  c.max_rounds = t.max_rounds;
  c.lora_method = t.lora_method;
  c.optimizer = t.optimizer;
  c.graph = t.graph;
  c.training.set_steps(1);
  return o;
}

grpc::Status RawUnaryCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                          const std::string& request_bytes, std::string* response_bytes) {
  grpc::GenericStub generic(channel);
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  generic.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                    [&](grpc::Status s) {
                      std::lock_guard<std::mutex> l(mu);
                      status = s;
                      done = true;
                      cv.notify_all();
                    });
  std::unique_lock<std::mutex> l(mu);
  cv.wait(l, [&] { return done; });  // the deadline above bounds the wait
  if (status.ok() && response_bytes != nullptr) {
    std::vector<grpc::Slice> slices;
    (void)response.Dump(&slices);
    response_bytes->clear();
    for (const auto& s : slices) {
      response_bytes->append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  return status;
}

}  // namespace fedlora::coordinator::testing
