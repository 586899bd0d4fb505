// What a device signs for every RPC after enrolment, and the gRPC metadata that carries it.
//
// Each call carries four metadata entries:
//   x-fedlora-device     the device id (as assigned at enrolment)
//   x-fedlora-time-ms    decimal Unix time in milliseconds when the call was signed
//   x-fedlora-nonce      16 fresh random bytes, lowercase hex (32 characters)
//   x-fedlora-signature  Ed25519 signature (64 bytes, lowercase hex: 128 characters) of the
//                        signing bytes below, under the device's enrolled key
//
// The signing bytes, byte for byte (every "\n" is a single 0x0A byte; no trailing newline):
//
//   "fedlora-call-v1" "\n"
//   METHOD            "\n"   full gRPC method path, e.g. "/fedlora.proto.Coordinator/Upload"
//   DEVICE_ID         "\n"   exactly the x-fedlora-device value
//   TIME_MS           "\n"   decimal, no sign for non-negative values, no leading zeros
//                            (i.e. "%lld"; "0" for zero)
//   NONCE_HEX         "\n"   lowercase hex of the 16 nonce bytes (32 characters)
//   BODY_SHA256_HEX          lowercase hex of SHA-256 of the request message's deterministic
//                            protobuf serialization (64 characters)
//
// Example: method "/fedlora.proto.Coordinator/Ping", device "dev-7", time 1700000000123,
// nonce 00 01 .. 0f, empty body gives
//   "fedlora-call-v1\n/fedlora.proto.Coordinator/Ping\ndev-7\n1700000000123\n"
//   "000102030405060708090a0b0c0d0e0f\n"
//   "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
//
// Unambiguous because METHOD (a path the server chooses) and DEVICE_ID (a gRPC metadata value,
// which cannot contain a newline) hold no "\n", and the remaining fields have fixed forms.
// The server rebuilds these bytes from the method it is serving, the metadata and the body it
// received, verifies the signature (VerifyEd25519), and only then consults its replay guard.
#ifndef FEDLORA_COMMON_CALL_SIGNATURE_H_
#define FEDLORA_COMMON_CALL_SIGNATURE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fedlora/common/encoding.h"  // HexEncode, HexDecode, Sha256.

namespace fedlora {

inline constexpr char kCallSignatureDomain[] = "fedlora-call-v1";
inline constexpr char kCallDeviceMetadataKey[] = "x-fedlora-device";
inline constexpr char kCallTimeMetadataKey[] = "x-fedlora-time-ms";
inline constexpr char kCallNonceMetadataKey[] = "x-fedlora-nonce";
inline constexpr char kCallSignatureMetadataKey[] = "x-fedlora-signature";
inline constexpr size_t kCallNonceBytes = 16;

// The bytes a device signs for one call (format above). `nonce` is the raw nonce (16 bytes in
// the protocol; hex-encoded here), `body` the request's deterministic serialization (hashed
// here). Pure function: the same inputs always give the same bytes.
std::string CallSigningBytes(std::string_view method, std::string_view device_id,
                             int64_t unix_millis, std::string_view nonce, std::string_view body);

}  // namespace fedlora

#endif  // FEDLORA_COMMON_CALL_SIGNATURE_H_
