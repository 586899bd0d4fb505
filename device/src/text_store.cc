#include "fedlora/device/text_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/private_file.h"
#include "fedlora/common/random.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/secagg/aead.h"
#include "text_store_format.h"

namespace fedlora::device {
namespace {

using namespace text_store_internal;  // NOLINT: the file format's constants and helpers

constexpr size_t kMinSealed = secagg::kGcmNonceSize + kTag + 8;
constexpr int64_t kDay = 86400;
constexpr int64_t kMinCompactBytes = 4096;

absl::Status Errno(const std::string& what, const std::string& path) {
  const int e = errno;
  const std::string msg = absl::StrCat(what, " ", path, ": ", std::strerror(e));
  if (e == ENOSPC || e == EDQUOT) {
    return absl::ResourceExhaustedError(absl::StrCat(msg, " (hint: free space on the device)"));
  }
  return absl::InternalError(msg);
}

absl::Status SyncTruncate(const std::string& path, int64_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Errno("cannot open", path);
  const bool ok = ::ftruncate(fd, size) == 0 && ::fsync(fd) == 0;
  absl::Status st = ok ? absl::OkStatus() : Errno("cannot truncate", path);
  ::close(fd);
  return st;
}

absl::StatusOr<secagg::Secret32> LoadOrCreateKey(const std::string& key_file) {
  auto bytes = ReadPrivateFile(key_file);
  if (absl::IsNotFound(bytes.status())) {
    secagg::Secret32 key;
    SecureRandom rng;
    rng.Fill(key.data(), key.size());
    std::string raw(reinterpret_cast<const char*>(key.data()), key.size());
    absl::Status st = WriteFileWithMode(key_file, raw, 0600, ExistingFile::kRefuse);
    secagg::CleanseString(raw);  // the key bytes do not outlive the write
    if (st.ok()) return key;
    if (!absl::IsAlreadyExists(st)) return st;
    bytes = ReadPrivateFile(key_file);  // another process created it first
  }
  if (!bytes.ok()) return bytes.status();
  if (bytes->size() != secagg::Secret32::kSize) {
    const size_t n = bytes->size();
    secagg::CleanseString(*bytes);
    return absl::FailedPreconditionError(absl::StrCat(
        "text store key file ", key_file, " holds ", n,
        " bytes, not 32 (hint: it is not a key this store wrote; restore the right file)"));
  }
  secagg::Secret32 key(reinterpret_cast<const uint8_t*>(bytes->data()));
  secagg::CleanseString(*bytes);
  return key;
}

}  // namespace

absl::StatusOr<TextStore> TextStore::Open(const TextStoreOptions& options, int64_t now_unix) {
  if (options.dir.empty()) return absl::InvalidArgumentError("text store: no directory given");
  if (!options.key.has_value() && options.key_file.empty()) {
    return absl::InvalidArgumentError(
        "text store: no key (hint: hand in a key from the platform key store, or name a key "
        "file)");
  }
  if (options.retention_days < 0 || options.max_bytes < 0 || options.max_records_per_key < 2) {
    return absl::InvalidArgumentError(
        "text store: retention limits must be >= 0 and max_records_per_key >= 2");
  }
  FEDLORA_RETURN_IF_ERROR(MakeDirs(options.dir));
  if (::chmod(options.dir.c_str(), 0700) != 0) return Errno("cannot chmod", options.dir);
  TextStore s;
  s.options_ = options;
  s.options_.key.reset();
  s.path_ = options.dir + "/text.fls";
  s.keys_path_ = options.dir + "/text.keys";
  if (options.key.has_value()) {
    s.key_ = *options.key;
  } else {
    FEDLORA_ASSIGN_OR_RETURN(s.key_, LoadOrCreateKey(options.key_file));
    s.key_path_ = options.key_file;
  }
  s.last_tag_ = std::string(kTag, '\0');
  s.open_ = true;
  auto data = ReadFileToString(s.path_);
  if (absl::IsNotFound(data.status())) return s;  // created by the first Append()
  if (!data.ok()) return data.status();
  const std::string& d = *data;
  const bool v1 = d.size() >= kHeaderSize && d.compare(0, kMagicSize, kMagicV1) == 0;
  if (d.size() < kHeaderSize || (!v1 && d.compare(0, kMagicSize, kMagicV2) != 0)) {
    return absl::DataLossError(
        absl::StrCat(s.path_,
                     " is not a fedlora text store (hint: move it away; Forget() or a new "
                     "directory starts an empty store)"));
  }
  s.store_id_ = d.substr(kMagicSize, kIdSize);
  s.legacy_v1_ = v1;
  size_t ring_size = 0;
  KeyRingEntry current_entry;
  if (v1) {
    s.data_key_ = s.key_;  // version 1 sealed records under the store key itself
  } else {
    auto ring_bytes = ReadFileToString(s.keys_path_);
    if (!ring_bytes.ok()) {
      return absl::DataLossError(
          absl::StrCat(s.keys_path_,
                       " is missing: the store cannot be read without its key ring (hint: "
                       "restore the store folder as a whole, or forget the store)"));
    }
    FEDLORA_ASSIGN_OR_RETURN(auto ring, DecodeKeyRing(*ring_bytes, s.keys_path_));
    ring_size = ring.size();
    auto it = std::find_if(ring.begin(), ring.end(),
                           [&](const KeyRingEntry& e) { return e.store_id == s.store_id_; });
    if (it == ring.end()) {
      return absl::DataLossError(absl::StrCat(
          s.path_,
          " is not the store its key ring belongs to: a copy of an earlier store, "
          "whose data key was rotated away (hint: nothing was changed; old copies of the "
          "store are unreadable by design)"));
    }
    FEDLORA_ASSIGN_OR_RETURN(s.data_key_, UnwrapDataKey(s.key_, *it));
    current_entry = *it;
  }
  size_t pos = kHeaderSize;
  uint64_t index = 0;
  while (pos < d.size()) {
    if (d.size() - pos < 4 || d.size() - pos - 4 < GetLe<uint32_t>(d.data() + pos)) break;  // torn
    const uint32_t len = GetLe<uint32_t>(d.data() + pos);
    if (len < kMinSealed) {
      return absl::DataLossError(absl::StrCat(s.path_, ": record ", index,
                                              " is malformed (the file was altered)"));
    }
    const std::string sealed = d.substr(pos + 4, len);
    auto plain =
        secagg::AeadOpen(s.data_key_, RecordAad(v1, s.store_id_, index, s.last_tag_), sealed);
    if (!plain.ok()) {
      return absl::DataLossError(absl::StrCat(
          s.path_, ": record ", index,
          " failed authentication: the file was altered, or this is not its key (hint: "
          "restore the store and its key together; nothing was changed)"));
    }
    s.entries_.push_back(
        {static_cast<int64_t>(GetLe<uint64_t>(plain->data())), plain->substr(8)});
    secagg::CleanseString(*plain);
    s.last_tag_ = sealed.substr(sealed.size() - kTag);
    pos += 4 + len;
    ++index;
  }
  if (pos < d.size()) {
    s.recovered_bytes_ = static_cast<int64_t>(d.size() - pos);
    FEDLORA_RETURN_IF_ERROR(SyncTruncate(s.path_, static_cast<int64_t>(pos)));
  }
  s.file_size_ = static_cast<int64_t>(pos);
  s.file_records_ = static_cast<int64_t>(index);
  if (ring_size > 1) {  // a rotation was interrupted: keep only this (verified) file's key
    FEDLORA_RETURN_IF_ERROR(WriteFileWithMode(s.keys_path_, EncodeKeyRing({current_entry}), 0600,
                                              ExistingFile::kReplace));
  }
  FEDLORA_RETURN_IF_ERROR(s.ApplyLimits(now_unix, /*compact_if_dead=*/false));
  if (v1 && s.rotations_ == 0) FEDLORA_RETURN_IF_ERROR(s.Rotate(now_unix));  // to version 2
  return s;
}

int64_t TextStore::text_bytes() const {
  int64_t n = 0;
  for (const auto& e : entries_) n += static_cast<int64_t>(e.text.size());
  return n;
}

absl::Status TextStore::Append(const std::string& text, int64_t now_unix) {
  if (!open_) return absl::FailedPreconditionError("text store was forgotten (hint: open it again)");
  if (text.empty()) return absl::InvalidArgumentError("text store: empty text");
  if (options_.max_bytes > 0 && static_cast<int64_t>(text.size()) > options_.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("text store: ", text.size(),
                                                   " bytes exceed the store's limit of ",
                                                   options_.max_bytes, " (hint: split it)"));
  }
  if (store_id_.empty() || file_records_ + 1 > options_.max_records_per_key) {
    // No file yet, or this data key has sealed its share: a new generation first.
    if (static_cast<int64_t>(entries_.size()) + 1 > options_.max_records_per_key) {
      return absl::ResourceExhaustedError(
          absl::StrCat("text store: ", entries_.size(), " entries kept; a data key seals at most ",
                       options_.max_records_per_key, " records (hint: set a byte or age limit)"));
    }
    FEDLORA_RETURN_IF_ERROR(Rotate(now_unix));
  }
  std::string tag = last_tag_;
  const TextEntry e{now_unix, text};
  std::string record = SealRecord(data_key_, store_id_, static_cast<uint64_t>(file_records_), &tag,
                                  e.unix_seconds, e.text);
  const int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Errno("cannot open", path_);
  size_t done = 0;
  while (done < record.size()) {
    const ssize_t w = ::write(fd, record.data() + done, record.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    done += static_cast<size_t>(w);
  }
  absl::Status st = absl::OkStatus();
  if (done < record.size() || ::fsync(fd) != 0) {
    st = Errno("cannot append to", path_);
    // Leave the file as it was: a half-written record must not stay behind.
    if (::ftruncate(fd, file_size_) == 0) (void)::fsync(fd);
  }
  ::close(fd);
  FEDLORA_RETURN_IF_ERROR(st);
  file_size_ += static_cast<int64_t>(record.size());
  bytes_written_ += static_cast<int64_t>(record.size());
  ++file_records_;
  entries_.push_back(e);
  last_tag_ = tag;
  return ApplyLimits(now_unix, /*compact_if_dead=*/false);
}

absl::StatusOr<std::vector<TextEntry>> TextStore::ReadAll(int64_t now_unix) {
  if (!open_)
    return absl::FailedPreconditionError("text store was forgotten (hint: open it again)");
  FEDLORA_RETURN_IF_ERROR(ApplyLimits(now_unix, /*compact_if_dead=*/false));
  return entries_;
}

absl::Status TextStore::ApplyLimits(int64_t now_unix, bool compact_if_dead) {
  // The live entries stay a suffix of the file: everything up to the newest entry outside a
  // limit is dropped (so a reopened store computes the same set from the file alone).
  size_t drop = 0;
  if (options_.retention_days > 0) {
    const int64_t cutoff = now_unix - options_.retention_days * kDay;
    for (size_t i = 0; i < entries_.size(); ++i) {
      if (entries_[i].unix_seconds < cutoff) drop = i + 1;
    }
  }
  if (options_.max_bytes > 0) {
    int64_t bytes = 0;
    for (size_t i = entries_.size(); i-- > drop;) {
      bytes += static_cast<int64_t>(entries_[i].text.size());
      if (bytes > options_.max_bytes) {
        drop = i + 1;
        break;
      }
    }
  }
  if (drop > 0) {
    for (size_t i = 0; i < drop; ++i) {
      dead_bytes_ += static_cast<int64_t>(entries_[i].text.size() + kRecordOverhead);
      secagg::CleanseString(entries_[i].text);
    }
    entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(drop));
    if (dead_since_ == 0) dead_since_ = now_unix;
  }
  if (dead_bytes_ == 0) return absl::OkStatus();
  const int64_t live = file_size_ - static_cast<int64_t>(kHeaderSize) - dead_bytes_;
  if (compact_if_dead || 2 * dead_bytes_ >= std::max(live, 2 * kMinCompactBytes) ||
      now_unix - dead_since_ >= kDay) {
    return Rotate(now_unix);
  }
  return absl::OkStatus();
}

absl::Status TextStore::Rotate(int64_t now_unix) {
  (void)now_unix;
  SecureRandom rng;
  std::string id(kIdSize, '\0');
  rng.Fill(reinterpret_cast<uint8_t*>(id.data()), id.size());
  secagg::Secret32 dk;
  rng.Fill(dk.data(), dk.size());
  const KeyRingEntry fresh = WrapDataKey(key_, id, dk);
  // 1. The ring holds both keys: whichever file a crash leaves behind still opens.
  std::vector<KeyRingEntry> both = {fresh};
  if (!store_id_.empty() && !legacy_v1_) {
    both.insert(both.begin(), WrapDataKey(key_, store_id_, data_key_));
  }
  const std::string ring2 = EncodeKeyRing(both);
  FEDLORA_RETURN_IF_ERROR(WriteFileWithMode(keys_path_, ring2, 0600, ExistingFile::kReplace));
  // 2. The live text under the new key, in place of the old file.
  std::string tag(kTag, '\0');
  std::string data = std::string(kMagicV2, kMagicSize) + id;
  for (size_t i = 0; i < entries_.size(); ++i) {
    data += SealRecord(dk, id, i, &tag, entries_[i].unix_seconds, entries_[i].text);
  }
  FEDLORA_RETURN_IF_ERROR(WriteFileWithMode(path_, data, 0600, ExistingFile::kReplace));
  store_id_ = id;
  data_key_ = dk;
  last_tag_ = tag;
  file_size_ = static_cast<int64_t>(data.size());
  file_records_ = static_cast<int64_t>(entries_.size());
  dead_bytes_ = 0;
  dead_since_ = 0;
  ++rotations_;
  legacy_v1_ = false;
  // 3. The old key leaves the ring: copies of the old file no longer open.
  const std::string ring1 = EncodeKeyRing({fresh});
  bytes_written_ += static_cast<int64_t>(ring2.size() + data.size() + ring1.size());
  secagg::CleanseString(data);
  return WriteFileWithMode(keys_path_, ring1, 0600, ExistingFile::kReplace);
}

namespace {

// Overwrites a file with zeros, syncs and removes it; OK when it does not exist.
absl::Status ZeroAndRemove(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return absl::OkStatus();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd >= 0) {
    const std::string zeros(64 << 10, '\0');
    for (off_t off = 0; off < st.st_size; off += static_cast<off_t>(zeros.size())) {
      const size_t n = std::min<size_t>(zeros.size(), static_cast<size_t>(st.st_size - off));
      if (::pwrite(fd, zeros.data(), n, off) < 0) break;
    }
    (void)::fsync(fd);
    ::close(fd);
  }
  if (::unlink(path.c_str()) != 0) return Errno("cannot remove", path);
  return SyncParentDir(path);  // the removal survives a power loss
}

}  // namespace

absl::Status TextStore::Erase(const TextStoreOptions& options) {
  FEDLORA_RETURN_IF_ERROR(ZeroAndRemove(options.dir + "/text.fls"));
  FEDLORA_RETURN_IF_ERROR(ZeroAndRemove(options.dir + "/text.keys"));
  if (!options.key.has_value() && !options.key_file.empty() &&
      ::unlink(options.key_file.c_str()) != 0 && errno != ENOENT) {
    return Errno("cannot remove key file", options.key_file);
  }
  return absl::OkStatus();
}

absl::Status TextStore::Forget() {
  if (!open_) return absl::OkStatus();
  TextStoreOptions o = options_;
  o.key_file = key_path_;  // only a key file this store used; a handed-in key is the app's
  FEDLORA_RETURN_IF_ERROR(Erase(o));
  for (auto& e : entries_) secagg::CleanseString(e.text);
  entries_.clear();
  key_.Clear();
  data_key_.Clear();
  store_id_.clear();
  open_ = false;
  return absl::OkStatus();
}

}  // namespace fedlora::device
