// What the user typed, kept on the device encrypted at rest (docs/device.md, "Local text
// store"). One append-only file of AES-256-GCM records under a 32-byte key that never leaves
// the device: a key file with owner-only permissions, or a key the app hands in from the
// platform key store. Retention limits (age and bytes) drop the oldest text first; Forget()
// erases the text and, for a key file, the key.
//
// File format (`<dir>/text.fls`): "FLTS1\n" || store id (16 random bytes) || records, each
//   u32 length (little-endian) || nonce (12) || ciphertext || tag (16)
// of plaintext i64 unix seconds || text, with associated data "fedlora-text-v1" || store id
// || u64 record index || the previous record's tag. Records can therefore be neither altered,
// reordered, dropped from the middle nor moved between stores without Open() refusing the
// file (DATA_LOSS). A record cut short at the end of the file is what a crash during an
// append leaves: Open() drops it (the append never returned OK) and keeps everything before.
#ifndef FEDLORA_DEVICE_TEXT_STORE_H_
#define FEDLORA_DEVICE_TEXT_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/secagg/secret.h"

namespace fedlora::device {

struct TextStoreOptions {
  std::string dir;       // created with mode 0700 if missing
  std::string key_file;  // used when no key is handed in; created (0600) if missing
  std::optional<secagg::Secret32> key;  // from the platform key store; wins over key_file
  int64_t retention_days = 30;          // older text is dropped; 0 = keep forever
  int64_t max_bytes = 4 << 20;          // text bytes kept, oldest dropped first; 0 = no limit

  // The store of a device state folder (`fedlora device observe|forget|run --from-store`):
  // <state>/text with the key file <state>/text.key.
  static TextStoreOptions ForState(const std::string& state_dir) {
    TextStoreOptions o;
    o.dir = state_dir + "/text";
    o.key_file = state_dir + "/text.key";
    return o;
  }
};

struct TextEntry {
  int64_t unix_seconds = 0;
  std::string text;
};

class TextStore {
 public:
  // Opens (or creates) the store and applies the retention limits as of `now_unix`.
  // FAILED_PRECONDITION for a key file others can read (hint: chmod 600) or of the wrong
  // size; DATA_LOSS for a store that fails authentication (tampered, or another key).
  static absl::StatusOr<TextStore> Open(const TextStoreOptions& options, int64_t now_unix);

  // Appends one piece of typed text, durably (fsync) before returning OK. On failure (a full
  // disk) the file is left exactly as before. INVALID_ARGUMENT for empty text.
  absl::Status Append(const std::string& text, int64_t now_unix);

  // Everything kept, oldest first, after dropping what the limits exclude as of `now_unix`.
  absl::StatusOr<std::vector<TextEntry>> ReadAll(int64_t now_unix);

  // Erases the store: the file is overwritten with zeros, synced and removed; a key file
  // this store created or read is removed too (so copies of the old file cannot be read).
  // The object is then closed: open a new store to keep typing.
  absl::Status Forget();

  // Forget() without opening: for a store that no longer opens (a lost key, a damaged file).
  // OK when there is nothing to erase.
  static absl::Status Erase(const TextStoreOptions& options);

  int64_t entries() const { return static_cast<int64_t>(entries_.size()); }
  int64_t text_bytes() const;
  // Bytes of a torn final record Open() dropped (a crash during an append); 0 normally.
  int64_t recovered_bytes() const { return recovered_bytes_; }
  const std::string& path() const { return path_; }

 private:
  TextStore() = default;
  // Drops entries outside the limits; when any were dropped, rewrites the file atomically
  // under a fresh chain (new nonces).
  absl::Status ApplyLimits(int64_t now_unix);

  TextStoreOptions options_;
  std::string path_;
  std::string key_path_;  // empty when the key was handed in
  secagg::Secret32 key_;
  std::string store_id_;
  std::vector<TextEntry> entries_;
  std::string last_tag_;  // tag of the last record in the file (chain), 16 zero bytes if none
  int64_t file_size_ = 0;
  int64_t recovered_bytes_ = 0;
  bool open_ = false;
};

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_TEXT_STORE_H_
