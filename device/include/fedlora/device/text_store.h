// What the user typed, kept on the device encrypted at rest (docs/device.md, "Local text
// store"). One append-only file of AES-256-GCM records under a 32-byte store key that never
// leaves the device: a key file with owner-only permissions, or a key the app hands in from
// the platform key store. Retention limits (age and bytes) drop the oldest text first;
// Forget() erases the text and, for a key file, the key.
//
// Files: `<dir>/text.fls` = "FLTS2\n" || store id (16 random bytes) || records, each
//   u32 length (little-endian) || nonce (12) || ciphertext || tag (16)
// of plaintext i64 unix seconds || text, sealed under the generation's data key with
// associated data "fedlora-text-v2" || store id || u64 record index || the previous record's
// tag. Records can therefore be neither altered, reordered, dropped from the middle nor moved
// between stores without Open() refusing the file (DATA_LOSS). A record cut short at the end
// of the file is what a crash during an append leaves: Open() drops it and keeps the rest.
// `<dir>/text.keys` = the key ring: the data key of the current generation (and, during a
// rotation, of the previous one), each wrapped under the store key.
//
// Appends cost O(record): text that falls out of the limits is hidden at once (never read
// back) and removed from the file by a compaction that runs rarely: when the dropped bytes
// reach half of the kept ones (at least 4 KiB), a day after text was first dropped, or before
// a data key has sealed `max_records_per_key` records. A compaction rewrites
// the kept text under a fresh data key and store id and then drops the old data key from the
// ring, so a copy of an earlier file (a backup, a flash block) no longer opens. Each GCM
// invocation under a data key is counted (one per record sealed); the store key only wraps
// one data key per compaction.
//
// A store that was never written to (a fresh Open(), or after Forget()) has no files: they are
// created by the first Append(). So after Forget() the next Open() may use a new store key.
// Version 1 files ("FLTS1", records under the store key) are read and rewritten as version 2.
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
  // Records one data key may seal before the store rotates to a new one (NIST SP 800-38D
  // caps random-nonce GCM at 2^32 invocations per key; this stays well below it).
  int64_t max_records_per_key = int64_t{1} << 30;

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
  // disk) the file is left exactly as before. INVALID_ARGUMENT for empty text. Writes one
  // record, plus now and then a compaction (see above): O(record) bytes amortized.
  absl::Status Append(const std::string& text, int64_t now_unix);

  // Everything kept, oldest first, after dropping what the limits exclude as of `now_unix`.
  absl::StatusOr<std::vector<TextEntry>> ReadAll(int64_t now_unix);

  // Erases the store: the file and the key ring are overwritten with zeros, synced and
  // removed; a key file this store created or read is removed too (so copies of the old file
  // cannot be read). The object is then closed: open a new store to keep typing. Until
  // something is appended again there is no store on disk, so the app may open the next one
  // with a new key (and delete the old key from its key store).
  absl::Status Forget();

  // Forget() without opening: for a store that no longer opens (a lost key, a damaged file).
  // OK when there is nothing to erase.
  static absl::Status Erase(const TextStoreOptions& options);

  int64_t entries() const { return static_cast<int64_t>(entries_.size()); }
  int64_t text_bytes() const;
  // Bytes of a torn final record Open() dropped (a crash during an append); 0 normally.
  int64_t recovered_bytes() const { return recovered_bytes_; }
  const std::string& path() const { return path_; }
  // The current generation's store id (16 bytes; empty before the first append).
  const std::string& store_id() const { return store_id_; }
  // GCM invocations under the current data key: the records it has sealed.
  int64_t records_under_key() const { return file_records_; }
  // Data-key rotations (compactions) this object has done.
  int64_t rotations() const { return rotations_; }
  // Bytes this object has written to its files (records, compactions, key ring).
  int64_t bytes_written() const { return bytes_written_; }

 private:
  TextStore() = default;
  // Hides entries outside the limits (a suffix of the file stays live) and compacts when
  // the rules above say so.
  absl::Status ApplyLimits(int64_t now_unix, bool compact_if_dead);
  // Rewrites the live entries under a fresh data key and store id (the key ring first holds
  // both keys, then the new one only).
  absl::Status Rotate(int64_t now_unix);

  TextStoreOptions options_;
  std::string path_;
  std::string keys_path_;
  std::string key_path_;            // empty when the key was handed in
  secagg::Secret32 key_;            // the store key (wraps data keys)
  secagg::Secret32 data_key_;       // the current generation's
  std::string store_id_;            // empty: no file yet
  std::vector<TextEntry> entries_;  // live, oldest first: the file's last entries_.size()
  std::string last_tag_;  // tag of the last record in the file (chain), 16 zero bytes if none
  int64_t file_size_ = 0;
  int64_t file_records_ = 0;  // records in the file, live or not
  int64_t dead_bytes_ = 0;    // file bytes of records no longer live
  int64_t dead_since_ = 0;    // when the oldest of them was dropped (now_unix)
  int64_t recovered_bytes_ = 0;
  int64_t rotations_ = 0;
  int64_t bytes_written_ = 0;
  bool legacy_v1_ = false;  // the file is version 1 until the first rotation
  bool open_ = false;
};

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_TEXT_STORE_H_
