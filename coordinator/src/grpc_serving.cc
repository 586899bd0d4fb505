#include "grpc_serving.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/net_address.h"

namespace fedlora::coordinator::internal {
namespace {

// Memory gRPC may use for all calls together: what the limits ask for, else half of RAM
// (at least 512 MiB).
size_t MemoryQuota(const ServiceLimits& limits) {
  if (limits.memory_quota_bytes > 0) return limits.memory_quota_bytes;
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  const size_t half = pages > 0 && page > 0 ? size_t(pages) * size_t(page) / 2 : 0;
  return std::max<size_t>(half, size_t(512) << 20);
}

}  // namespace

absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& s) {
  auto colon = s.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(s.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("'", s, "' is not HOST:PORT"));
  }
  return std::make_pair(s.substr(0, colon), port);
}

absl::Status CheckPlaintextAllowed(bool insecure, const std::string& listen) {
  if (insecure && !IsLoopbackAddress(listen)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--insecure serves plaintext and is allowed on loopback only, not on ", listen,
        " (hint: use TLS: --tls-cert/--tls-key, or the files `coordinator init` made)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<grpc::Server>> StartCoordinatorGrpc(
    const std::string& state_dir, const std::string& listen, bool insecure,
    const std::string& tls_cert, const std::string& tls_key, const ServiceLimits& limits,
    grpc::Service* service, int* port, grpc::Service* extra) {
  if (absl::Status s = CheckPlaintextAllowed(insecure, listen); !s.ok()) return s;
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (insecure) {
    creds = grpc::InsecureServerCredentials();
  } else {
    const std::string cert = tls_cert.empty() ? state_dir + "/tls/server.pem" : tls_cert;
    const std::string key = tls_key.empty() ? state_dir + "/tls/server.key" : tls_key;
    auto cert_pem = ReadFileToString(cert);
    auto key_pem = ReadFileToString(key);
    if (!cert_pem.ok() || !key_pem.ok()) {
      return absl::NotFoundError(absl::StrCat(
          "TLS certificate or key not readable (", cert, ", ", key,
          "); hint: `fedlora coordinator init` makes a demo CA and server certificate, or pass "
          "--tls-cert/--tls-key (--insecure on loopback only)"));
    }
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({*key_pem, *cert_pem});
    creds = grpc::SslServerCredentials(ssl);
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, creds, port);
  // The largest request of any method; each method refuses more than its own limit before
  // parsing (grpc_service.h).
  builder.SetMaxReceiveMessageSize(static_cast<int>(limits.secagg_message_bytes + 4096));
  builder.SetMaxSendMessageSize(static_cast<int>(limits.secagg_message_bytes + 4096));
  // What one peer can hold: streams per connection, the time a connection may take to
  // handshake, and gRPC's memory for all calls together (beyond it, calls are refused with
  // RESOURCE_EXHAUSTED, which devices retry). gRPC 1.51 has no per-address connection cap.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, limits.max_streams_per_connection);
  builder.AddChannelArgument(
      GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
      static_cast<int>(absl::ToInt64Milliseconds(limits.handshake_timeout)));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60000);
  grpc::ResourceQuota quota("fedlora-coordinator");
  quota.Resize(MemoryQuota(limits));
  builder.SetResourceQuota(quota);
  builder.RegisterService(service);
  if (extra != nullptr) builder.RegisterService(extra);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || *port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", listen, " (hint: the port is in use or the address is not "
        "local; pick another with --listen HOST:PORT)"));
  }
  if (auto* health = server->GetHealthCheckService()) {
    health->SetServingStatus("fedlora.v1.Coordinator", true);
  }
  return server;
}

}  // namespace fedlora::coordinator::internal
