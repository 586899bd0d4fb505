// The coordinator's side of secure aggregation: learns the sum (mod 2^bits) of the
// surviving devices' inputs and nothing else. Transport-independent: it sends through a
// SendToDevicesInterface and is fed device messages by its caller. The caller decides when
// a phase closes (all expected messages in, or a deadline) and calls ProceedToNextPhase().
// Not thread-safe.
#ifndef FEDLORA_SECAGG_SERVER_H_
#define FEDLORA_SECAGG_SERVER_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedlora/proto/secagg.pb.h"
#include "fedlora/secagg/types.h"

namespace fedlora::secagg {

struct ServerContext;
class ServerState;

// What happened to one device, as seen by the server.
struct DeviceOutcome {
  bool included_in_sum = false;          // its masked input reached the sum (U3)
  Phase dropped_in = Phase::kCompleted;  // kCompleted: never dropped
  DropReason reason = DropReason::kNone;
  std::string detail;  // the rejection message (never contains key material)
};

class SecAggServer {
 public:
  // `sender` must outlive the server; `threads` (>= 1) parallelize the final unmasking.
  // INVALID_ARGUMENT for an invalid config.
  static absl::StatusOr<std::unique_ptr<SecAggServer>> Create(
      const proto::SecAggSessionConfig& config, SendToDevicesInterface* sender, int threads = 1);
  ~SecAggServer();

  // Accepts one device message, or rejects it and drops the sender (the round goes on).
  // Errors: INVALID_ARGUMENT (device outside the round, malformed, wrong session or vector
  // length), FAILED_PRECONDITION (out of order, duplicate, sender already dropped, round
  // over), ABORTED (the device aborted).
  absl::Status HandleMessage(const proto::SecAggDeviceMessage& message);

  // Closes the current phase: silent devices are dropped (kNoResponse), then the next
  // round's requests go out, or the round completes or aborts (see abort_status()).
  // FAILED_PRECONDITION only when the round is already over.
  absl::Status ProceedToNextPhase();

  Phase phase() const;
  // Devices that still owe a message in the current phase.
  int NumPending() const;
  // OK unless phase() == kAborted; then FAILED_PRECONDITION (below threshold) or DATA_LOSS
  // (forged shares) with the reason.
  absl::Status abort_status() const;
  // The unmasked sum, length dim, entries < 2^bits. FAILED_PRECONDITION unless completed.
  absl::StatusOr<std::vector<uint32_t>> TakeSum();
  // Devices whose inputs are in the sum, ascending.
  std::vector<uint32_t> IncludedDevices() const;
  const proto::SecAggSessionConfig& config() const;
  // Session id (empty before the share-keys round).
  const std::string& session_id() const;
  DeviceOutcome Outcome(uint32_t device) const;
  std::array<int, kNumDropReasons> drop_counts() const;
  // Messages rejected because their device id was outside the round.
  int rejected_unknown_device() const;

 private:
  SecAggServer();
  std::unique_ptr<ServerContext> ctx_;
  std::unique_ptr<ServerState> state_;
};

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_SERVER_H_
