// Host:port helpers shared by the coordinator (refuses plaintext off loopback) and the device
// client (refuses plaintext to a non-loopback coordinator).
#ifndef FEDLORA_COMMON_NET_ADDRESS_H_
#define FEDLORA_COMMON_NET_ADDRESS_H_

#include <string>

namespace fedlora {

// True for 127.0.0.0/8, ::1 and localhost (with or without :port, IPv6 in brackets) and for
// unix: addresses.
bool IsLoopbackAddress(const std::string& host_port);

}  // namespace fedlora

#endif  // FEDLORA_COMMON_NET_ADDRESS_H_
