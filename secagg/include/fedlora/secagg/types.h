// Protocol phases, drop reasons and the send interfaces shared by devices and server.
#ifndef FEDLORA_SECAGG_TYPES_H_
#define FEDLORA_SECAGG_TYPES_H_

#include <cstdint>
#include <utility>

#include "fedlora/proto/secagg.pb.h"

namespace fedlora::secagg {

// The four rounds of Bonawitz et al. plus the terminal states.
enum class Phase {
  kAdvertiseKeys = 0,  // R0: devices send two X25519 public keys
  kShareKeys = 1,      // R1: devices send Shamir shares, encrypted to each neighbour
  kMaskedInput = 2,    // R2: devices send masked, packed input vectors
  kUnmasking = 3,      // R3: devices reveal shares so the server can remove masks
  kCompleted = 4,
  kAborted = 5,
};
inline constexpr int kNumProtocolPhases = 4;
const char* PhaseName(Phase phase);

// Why the server stopped counting a device. Misbehaviour is data, not an error: the device
// is dropped, the reason counted, and the round goes on.
enum class DropReason {
  kNone = 0,
  kNoResponse,         // no message before the phase closed (a dropout)
  kDeviceAborted,      // the device sent an abort (refusal, failed decryption, ...)
  kMalformedMessage,   // wrong key or share sizes, wrong share set, bad packing
  kWrongVectorLength,  // masked input of the wrong dimension or bit width
  kWrongSession,       // round nonce or session id mismatch (replayed / cross-round)
  kUnexpectedMessage,  // a message of another phase (out of order)
  kDuplicateMessage,   // a second message in the same phase
};
inline constexpr int kNumDropReasons = 8;
const char* DropReasonName(DropReason reason);

// Device -> server. Implementations must accept calls from the device's own thread.
class SendToServerInterface {
 public:
  virtual ~SendToServerInterface() = default;
  virtual void Send(const proto::SecAggDeviceMessage& message) = 0;
};

// Keeps a device's last outgoing message until the transport takes it for the next upload
// (a device sends at most one message per phase): what a request/response transport needs.
class LastMessageOutbox : public SendToServerInterface {
 public:
  void Send(const proto::SecAggDeviceMessage& m) override {
    message_ = m;
    has_ = true;
  }
  // Moves the message into `out`; false when nothing was sent since the last Take.
  bool Take(proto::SecAggDeviceMessage* out) {
    if (!has_) return false;
    *out = std::move(message_);
    has_ = false;
    return true;
  }

 private:
  proto::SecAggDeviceMessage message_;
  bool has_ = false;
};

// Server -> one device.
class SendToDevicesInterface {
 public:
  virtual ~SendToDevicesInterface() = default;
  virtual void Send(uint32_t device, const proto::SecAggServerMessage& message) = 0;
};

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_TYPES_H_
