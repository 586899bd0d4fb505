// In-memory queues between devices and the server, with byte accounting (internal).
#ifndef FEDLORA_SECAGG_SRC_IN_PROCESS_TRANSPORT_H_
#define FEDLORA_SECAGG_SRC_IN_PROCESS_TRANSPORT_H_

#include <vector>

#include "fedlora/secagg/round_driver.h"
#include "fedlora/secagg/types.h"

namespace fedlora::secagg {

// One device's uplink queue; written only from that device's thread.
class DeviceOutbox final : public SendToServerInterface {
 public:
  void Send(const proto::SecAggDeviceMessage& message) override {
    bytes_sent += message.ByteSizeLong();
    queue.push_back(message);
  }
  std::vector<proto::SecAggDeviceMessage> queue;
  uint64_t bytes_sent = 0;
};

// Downlink queues for all devices; written by the server thread only.
class ServerOutbox final : public SendToDevicesInterface {
 public:
  ServerOutbox(size_t n, const TransportHooks* hooks)
      : queues(n), bytes_received(n, 0), hooks_(hooks) {}
  void Send(uint32_t device, const proto::SecAggServerMessage& message) override {
    queues[device].push_back(message);
    if (hooks_ != nullptr && hooks_->to_device) hooks_->to_device(device, &queues[device].back());
    bytes_received[device] += queues[device].back().ByteSizeLong();
  }
  std::vector<std::vector<proto::SecAggServerMessage>> queues;
  std::vector<uint64_t> bytes_received;

 private:
  const TransportHooks* hooks_;
};

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_SRC_IN_PROCESS_TRANSPORT_H_
