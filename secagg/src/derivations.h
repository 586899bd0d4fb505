// Session binding and key derivation shared by device and server states (internal).
#ifndef FEDLORA_SECAGG_SRC_DERIVATIONS_H_
#define FEDLORA_SECAGG_SRC_DERIVATIONS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "fedlora/proto/secagg.pb.h"
#include "fedlora/secagg/secret.h"

namespace fedlora::secagg {

inline constexpr size_t kSharePayloadBytes = 80;  // key share (40) || self-mask share (40)
inline constexpr size_t kSealedShareBytes = 12 + kSharePayloadBytes + 16;

// INVALID_ARGUMENT unless: round nonce 32 bytes, 1 <= bits <= 32, dim >= 1, a valid graph,
// 2 <= threshold <= degree + 1.
absl::Status ValidateSessionConfig(const proto::SecAggSessionConfig& config);

// SHA-256 over every advertised (id, enc key, mask key), in ascending id order.
class KeyListHasher {
 public:
  KeyListHasher();
  void Add(uint32_t device, const std::string& enc_pk, const std::string& mask_pk);
  std::string Finish();

 private:
  std::string buf_;
};

// SHA-256(domain || config fields || key list digest): binds every later message to the
// round and to all advertised keys.
std::string ComputeSessionId(const proto::SecAggSessionConfig& config,
                             const std::string& key_list_digest);

// Directional AES-256-GCM key for shares sent from `sender` to `receiver`.
Secret32 ShareEncryptionKey(const Secret32& dh, const std::string& session_id, uint32_t sender,
                            uint32_t receiver);
std::string ShareAad(const std::string& session_id, uint32_t sender, uint32_t receiver);

// Seed of the pairwise mask between u and v (symmetric in u, v).
Secret32 PairwiseMaskSeed(const Secret32& dh, const std::string& session_id, uint32_t u,
                          uint32_t v);
// Device `self` adds the pairwise mask shared with `peer` when self < peer, else subtracts.
inline bool AddsPairwiseMask(uint32_t self, uint32_t peer) { return self < peer; }

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_SRC_DERIVATIONS_H_
