#include "fedlora/common/net_address.h"

#include "absl/strings/match.h"

namespace fedlora {

bool IsLoopbackAddress(const std::string& host_port) {
  if (absl::StartsWith(host_port, "unix:")) return true;
  std::string host = host_port;
  if (absl::StartsWith(host, "[")) {
    host = host.substr(1, host.find(']') - 1);
  } else if (auto colon = host.rfind(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

}  // namespace fedlora
