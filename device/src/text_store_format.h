// The text store's on-disk pieces (device/text_store.h): record sealing and the key ring that
// holds each generation's data key wrapped under the store's key. Internal to device/.
#ifndef FEDLORA_DEVICE_SRC_TEXT_STORE_FORMAT_H_
#define FEDLORA_DEVICE_SRC_TEXT_STORE_FORMAT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/secagg/aead.h"
#include "fedlora/secagg/secret.h"

namespace fedlora::device::text_store_internal {

inline constexpr char kMagicV1[] = "FLTS1\n";  // records under the store key itself (legacy)
inline constexpr char kMagicV2[] = "FLTS2\n";  // records under a per-generation data key
inline constexpr size_t kMagicSize = 6;
inline constexpr size_t kIdSize = 16;
inline constexpr size_t kHeaderSize = kMagicSize + kIdSize;
inline constexpr size_t kTag = secagg::kGcmTagSize;
// Bytes a record takes in the file beyond its text: length, nonce, seconds, tag.
inline constexpr size_t kRecordOverhead = 4 + secagg::kGcmNonceSize + 8 + kTag;

template <typename T>
void PutLe(std::string* out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
template <typename T>
T GetLe(const char* p) {
  T v = 0;
  for (size_t i = sizeof(T); i-- > 0;) v = static_cast<T>((v << 8) | static_cast<uint8_t>(p[i]));
  return v;
}

// The associated data of record `index`: the format's label (v1 or v2), the store id, the
// index and the previous record's tag (the chain).
std::string RecordAad(bool v1, const std::string& store_id, uint64_t index,
                      const std::string& prev_tag);

// length || sealed(i64 seconds || text); updates *prev_tag to this record's tag.
std::string SealRecord(const secagg::Secret32& key, const std::string& store_id, uint64_t index,
                       std::string* prev_tag, int64_t unix_seconds, const std::string& text);

// One generation's data key, wrapped under the store key (AES-256-GCM, associated data
// "fedlora-text-key-v1" || store id).
struct KeyRingEntry {
  std::string store_id;  // 16 bytes
  std::string wrapped;   // nonce || ciphertext(32) || tag
};

// `<dir>/text.keys`: "FLTK1\n" || u8 count || count x (store id || wrapped key).
std::string EncodeKeyRing(const std::vector<KeyRingEntry>& entries);
// DATA_LOSS for a malformed ring.
absl::StatusOr<std::vector<KeyRingEntry>> DecodeKeyRing(const std::string& bytes,
                                                        const std::string& path);

KeyRingEntry WrapDataKey(const secagg::Secret32& store_key, const std::string& store_id,
                         const secagg::Secret32& data_key);
// DATA_LOSS when the entry does not open under `store_key` (another key, or altered).
absl::StatusOr<secagg::Secret32> UnwrapDataKey(const secagg::Secret32& store_key,
                                               const KeyRingEntry& entry);

}  // namespace fedlora::device::text_store_internal

#endif  // FEDLORA_DEVICE_SRC_TEXT_STORE_FORMAT_H_
