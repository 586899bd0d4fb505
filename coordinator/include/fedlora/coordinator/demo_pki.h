// A throw-away certificate authority and server certificate for demos and tests of the
// coordinator's TLS endpoint. For production, use certificates from your own PKI.
#ifndef FEDLORA_COORDINATOR_DEMO_PKI_H_
#define FEDLORA_COORDINATOR_DEMO_PKI_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fedlora::coordinator {

// Creates `dir` (and parents) if needed and writes:
//   dir/ca.pem      self-signed CA certificate ("fedlora demo CA"), P-256, 10 years,
//                   basicConstraints CA:TRUE pathlen:0, keyUsage keyCertSign+cRLSign (mode 0644)
//   dir/ca.key      its private key, PEM PKCS#8 (mode 0600)
//   dir/server.pem  server certificate signed by the CA: P-256 key, SHA-256 signature, random
//                   positive 16-byte serial, valid from 5 minutes ago for 398 days,
//                   subjectAltName = every DNS name and IP address given, extendedKeyUsage
//                   serverAuth, CN = the first name (mode 0644)
//   dir/server.key  its private key, PEM PKCS#8 (mode 0600)
// Devices trust ca.pem; the coordinator serves server.pem/server.key.
// Fails with INVALID_ARGUMENT (no names at all, an empty or malformed DNS name, an
// unparsable IP address), ALREADY_EXISTS (any of the four files exists: nothing is
// overwritten, nothing written), INTERNAL (OpenSSL or I/O failure; files written so far are
// removed).
absl::Status CreateDemoPki(const std::string& dir, const std::vector<std::string>& dns_names,
                           const std::vector<std::string>& ip_addresses);

// SHA-256 fingerprint of the first certificate in `pem` (over its DER encoding), as 64
// lowercase hex characters: `openssl x509 -noout -fingerprint -sha256` prints the same digest
// in upper case with colons. INVALID_ARGUMENT if `pem` holds no PEM certificate.
absl::StatusOr<std::string> CertificateFingerprintSha256(const std::string& pem);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_DEMO_PKI_H_
