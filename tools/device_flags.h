// The connection flags every `fedlora device` command that talks to a coordinator takes.
#ifndef FEDLORA_TOOLS_DEVICE_FLAGS_H_
#define FEDLORA_TOOLS_DEVICE_FLAGS_H_

#include <memory>
#include <string>

#include "cli_common.h"
#include "fedlora/device/coordinator_client.h"

namespace fedlora::cli {

struct DeviceConnection {
  std::string coordinator = "localhost:50051", state, ca, server_name;
  bool insecure = false, json = false;
};

inline void AddConnectionFlags(CLI::App* cmd, DeviceConnection* o) {
  cmd->add_option("--coordinator", o->coordinator, "HOST:PORT of the coordinator")
      ->capture_default_str();
  cmd->add_option("--state", o->state, "the device's state folder (key, id, adapters)")->required();
  cmd->add_option("--ca", o->ca, "CA certificate of the coordinator (TLS)");
  cmd->add_option("--server-name", o->server_name, "TLS name to verify (default: the host)");
  cmd->add_flag("--insecure", o->insecure, "plaintext gRPC (loopback coordinators only)");
  cmd->add_flag("--json", o->json, "print one JSON summary");
}

inline device::ChannelOptions DeviceChannelOptions(const DeviceConnection& o) {
  device::ChannelOptions c;
  c.address = o.coordinator;
  c.insecure = o.insecure;
  c.ca_pem_path = o.ca;
  c.server_name = o.server_name;
  return c;
}

inline absl::StatusOr<std::shared_ptr<grpc::Channel>> DeviceChannel(const DeviceConnection& o) {
  return device::MakeChannel(DeviceChannelOptions(o));
}

}  // namespace fedlora::cli

#endif  // FEDLORA_TOOLS_DEVICE_FLAGS_H_
