// Background processes for process-level tests (a real coordinator, real devices): started with
// fork/exec, output to files, waited for with a bounded time, killed at the end.
#ifndef FEDLORA_TESTS_TESTUTIL_PROCESS_H_
#define FEDLORA_TESTS_TESTUTIL_PROCESS_H_

#include "fedlora/common/child_process.h"

#include <map>
#include <string>
#include <vector>

namespace fedlora::testing {

using fedlora::ChildProcess;

// Runs FEDLORA_BINARY with `args` (see fedlora/common/child_process.h).
ChildProcess StartFedlora(const std::vector<std::string>& args, const std::string& log_prefix,
                          const std::map<std::string, std::string>& env = {});

// A TCP port that was free a moment ago on 127.0.0.1.
int FreeLoopbackPort();

// A TCP proxy on 127.0.0.1 that forwards every connection to 127.0.0.1:`target_port` and
// records every byte the clients send (to test what leaves a device).
class RecordingProxy {
 public:
  explicit RecordingProxy(int target_port);
  ~RecordingProxy();
  int port() const { return port_; }
  // Everything received from clients so far, in arrival order per connection.
  std::string ClientBytes();
  // The same, one string per connection (in the order they were accepted).
  std::vector<std::string> ClientConnections();

 private:
  struct State;
  State* state_;
  int port_ = 0;
};

// The gRPC request messages in what one plaintext HTTP/2 client connection sent (after the
// connection preface: DATA frames per stream, cut at gRPC's 5-byte length prefixes), in the
// order their last bytes arrived. Stops at the first frame that does not parse.
std::vector<std::string> GrpcRequestMessages(const std::string& connection_bytes);

// The top-level scalar fields of a protobuf message in wire format: every varint field's value
// and every 64-bit field's bits (a double's encoding). Nested messages and bytes are not
// entered. Returns false (with what was read so far) when `message` is not valid wire format.
struct WireScalars {
  std::vector<uint64_t> varints;
  std::vector<uint64_t> fixed64;
};
bool TopLevelScalars(const std::string& message, WireScalars* out);

}  // namespace fedlora::testing

#endif  // FEDLORA_TESTS_TESTUTIL_PROCESS_H_
