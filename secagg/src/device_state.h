// Device-side protocol states (internal). One class per round, as in federated-compute's
// fcp/secagg/client: each state handles only the server message of its round; anything else
// falls through to DeviceState's "unexpected message" default.
#ifndef FEDLORA_SECAGG_SRC_DEVICE_STATE_H_
#define FEDLORA_SECAGG_SRC_DEVICE_STATE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/proto/secagg.pb.h"
#include "fedlora/secagg/rng.h"
#include "fedlora/secagg/types.h"

namespace fedlora::secagg {

// What every device state can see. Owned by SecAggDevice; states keep a pointer.
struct DeviceContext {
  uint32_t id = 0;
  proto::SecAggSessionConfig config;
  std::vector<uint32_t> neighbours;  // graph neighbours, ascending, excluding id
  SendToServerInterface* sender = nullptr;
  RandomSource* rng = nullptr;
  std::vector<uint32_t> input;  // consumed (masked in place) in the masked-input round
  bool has_input = false;
  std::string session_id;  // known from the share-keys round on

  // Stamps device id, round nonce and session id, then sends.
  void Send(proto::SecAggDeviceMessage& message) const;
};

class DeviceState {
 public:
  explicit DeviceState(DeviceContext* ctx) : ctx_(ctx) {}
  virtual ~DeviceState() = default;

  virtual Phase phase() const = 0;
  // R0 only: generate keys and advertise them. FAILED_PRECONDITION elsewhere.
  virtual absl::StatusOr<std::unique_ptr<DeviceState>> Start();
  // Returns the next state, or an error after which the device aborts. Default:
  // FAILED_PRECONDITION "unexpected message".
  virtual absl::StatusOr<std::unique_ptr<DeviceState>> HandleMessage(
      const proto::SecAggServerMessage& message);

 protected:
  // INVALID_ARGUMENT unless the message carries this session's id (constant-time compare).
  absl::Status CheckSessionId(const proto::SecAggServerMessage& message) const;
  DeviceContext* ctx_;
};

class DeviceCompletedState final : public DeviceState {
 public:
  using DeviceState::DeviceState;
  Phase phase() const override { return Phase::kCompleted; }
};

class DeviceAbortedState final : public DeviceState {
 public:
  DeviceAbortedState(DeviceContext* ctx, std::string reason)
      : DeviceState(ctx), reason_(std::move(reason)) {}
  Phase phase() const override { return Phase::kAborted; }
  const std::string& reason() const { return reason_; }

 private:
  std::string reason_;
};

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_SRC_DEVICE_STATE_H_
