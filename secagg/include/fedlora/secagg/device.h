// One device's side of secure aggregation. Transport-independent: the device sends through
// a SendToServerInterface and is fed the server's messages by its caller (the in-process
// driver, or a gRPC client). Not thread-safe; distinct devices may run on distinct threads.
//
//   auto dev = SecAggDevice::Create(id, config, &sender, &rng);
//   dev->SetInput(std::move(vector));   // entries < 2^bits, length dim
//   dev->Start();                       // sends AdvertiseKeys
//   dev->HandleMessage(msg);            // for each server message, until Completed/Aborted
#ifndef FEDLORA_SECAGG_DEVICE_H_
#define FEDLORA_SECAGG_DEVICE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedlora/proto/secagg.pb.h"
#include "fedlora/secagg/rng.h"
#include "fedlora/secagg/types.h"

namespace fedlora::secagg {

struct DeviceContext;
class DeviceState;

class SecAggDevice {
 public:
  // `sender` and `rng` must outlive the device. INVALID_ARGUMENT for an invalid config or
  // an id outside [0, num_devices).
  static absl::StatusOr<std::unique_ptr<SecAggDevice>> Create(
      uint32_t id, const proto::SecAggSessionConfig& config, SendToServerInterface* sender,
      RandomSource* rng);
  ~SecAggDevice();

  // Takes the input vector (length dim, entries < 2^bits); must precede the masked-input
  // round. INVALID_ARGUMENT for a wrong length or an out-of-range entry.
  absl::Status SetInput(std::vector<uint32_t> input);

  // Generates keys and sends AdvertiseKeys. FAILED_PRECONDITION if already started.
  absl::Status Start();

  // Processes one server message. A ServerAbort moves the device to Aborted (OK returned).
  // Any other error means the device rejected the message: it sends a DeviceAbort with the
  // reason, moves to Aborted and returns the error (codes as documented by each round:
  // INVALID_ARGUMENT, DATA_LOSS, PERMISSION_DENIED, FAILED_PRECONDITION).
  absl::Status HandleMessage(const proto::SecAggServerMessage& message);

  uint32_t id() const;
  Phase phase() const;
  // Why the device aborted (empty unless phase() == kAborted).
  const std::string& abort_reason() const { return abort_reason_; }

 private:
  SecAggDevice();
  absl::Status Transition(absl::StatusOr<std::unique_ptr<DeviceState>> next);

  std::unique_ptr<DeviceContext> ctx_;
  std::unique_ptr<DeviceState> state_;
  std::string abort_reason_;
};

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_DEVICE_H_
