// Server-side protocol states (internal), one class per round as in federated-compute's
// fcp/secagg/server/*_state.cc. The base class performs the checks common to every round
// (device in range and not dropped, round nonce, session id, device aborts) and gives the
// default "unexpected message" behaviour: the sender is dropped and the round goes on.
#ifndef FEDLORA_SECAGG_SRC_SERVER_STATE_H_
#define FEDLORA_SECAGG_SRC_SERVER_STATE_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "server_context.h"

namespace fedlora::secagg {

class ServerState {
 public:
  explicit ServerState(ServerContext* ctx) : ctx_(ctx) {}
  virtual ~ServerState() = default;
  virtual Phase phase() const = 0;

  // Accepts or rejects one device message. Rejection returns the reason as a status
  // (INVALID_ARGUMENT: unknown device, malformed; FAILED_PRECONDITION: out of order,
  // duplicate, already dropped; ABORTED: the device aborted) and drops the device.
  absl::Status HandleMessage(const proto::SecAggDeviceMessage& message);

  // Closes the phase (silent devices are dropped) and returns the next state: the next
  // round, Completed, or Aborted (below threshold). FAILED_PRECONDITION in terminal states.
  virtual absl::StatusOr<std::unique_ptr<ServerState>> Proceed();

  // The payload this phase accepts (PAYLOAD_NOT_SET in terminal states).
  virtual proto::SecAggDeviceMessage::PayloadCase expected_payload() const {
    return proto::SecAggDeviceMessage::PAYLOAD_NOT_SET;
  }

  // Devices still expected to answer in this phase.
  virtual int NumPending() const { return 0; }

 protected:
  // Handles a message that passed the common checks. Default: unexpected message.
  virtual absl::Status Handle(uint32_t device, const proto::SecAggDeviceMessage& message);
  absl::Status Reject(uint32_t device, DropReason reason, absl::Status status) {
    return ctx_->Drop(device, phase(), reason, std::move(status));
  }
  // Drops every device for which `pending` is true with kNoResponse.
  void DropSilent(bool ServerDeviceRecord::*flag, bool ServerDeviceRecord::*prerequisite);
  int CountPending(bool ServerDeviceRecord::*flag, bool ServerDeviceRecord::*prerequisite) const;
  // The Aborted state, after telling the remaining devices.
  std::unique_ptr<ServerState> Abort(absl::Status status);

  ServerContext* ctx_;
};

class ServerAbortedState final : public ServerState {
 public:
  ServerAbortedState(ServerContext* ctx, absl::Status status)
      : ServerState(ctx), status_(std::move(status)) {}
  Phase phase() const override { return Phase::kAborted; }
  const absl::Status& status() const { return status_; }

 private:
  absl::Status status_;
};

class ServerCompletedState final : public ServerState {
 public:
  ServerCompletedState(ServerContext* ctx, std::vector<uint32_t> sum,
                       std::vector<uint32_t> included)
      : ServerState(ctx), sum_(std::move(sum)), included_(std::move(included)) {}
  Phase phase() const override { return Phase::kCompleted; }
  std::vector<uint32_t>& sum() { return sum_; }
  const std::vector<uint32_t>& included() const { return included_; }

 private:
  std::vector<uint32_t> sum_;
  std::vector<uint32_t> included_;
};

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_SRC_SERVER_STATE_H_
