// Host:port helpers shared by the coordinator (refuses plaintext off loopback) and the device
// client (refuses plaintext to a non-loopback coordinator).
#ifndef FEDLORA_COMMON_NET_ADDRESS_H_
#define FEDLORA_COMMON_NET_ADDRESS_H_

#include <string>

namespace fedlora {

// The host part of "host:port", "[v6]:port", "host" or "[v6]" (brackets removed).
std::string HostOfAddress(const std::string& host_port);

// True when the address can only reach this machine: unix: addresses, and hosts whose every
// resolved address is loopback (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104). A numeric address is
// checked as it is; a name (e.g. localhost) is resolved with getaddrinfo, and a name that does
// not resolve, or that resolves to any non-loopback address, is not loopback. So
// "127.evil.example" is judged by what it resolves to, not by how it is spelt.
bool IsLoopbackAddress(const std::string& host_port);

// A TCP port that was free a moment ago on 127.0.0.1 (bound to port 0, read back, closed);
// 0 when no socket could be bound. Another process may take it before the caller binds it.
int PickFreeLoopbackPort();

// True when a TCP connection to 127.0.0.1:`port` succeeds now (it is closed at once): a
// server's readiness check.
bool LoopbackPortAccepts(int port);

}  // namespace fedlora

#endif  // FEDLORA_COMMON_NET_ADDRESS_H_
