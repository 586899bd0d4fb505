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

namespace fedlora::device {
namespace {

constexpr char kMagic[] = "FLTS1\n";
constexpr size_t kMagicSize = 6;
constexpr size_t kIdSize = 16;
constexpr size_t kHeaderSize = kMagicSize + kIdSize;
constexpr size_t kTag = secagg::kGcmTagSize;
constexpr size_t kMinSealed = secagg::kGcmNonceSize + kTag + 8;
constexpr int64_t kDay = 86400;

// Little-endian fixed-width integers (the record length and the record fields).
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

std::string Aad(const std::string& store_id, uint64_t index, const std::string& prev_tag) {
  std::string aad = "fedlora-text-v1";
  aad += store_id;
  PutLe<uint64_t>(&aad, index);
  aad += prev_tag;
  return aad;
}

// length || sealed(i64 seconds || text); updates *prev_tag to this record's tag.
std::string SealRecord(const secagg::Secret32& key, const std::string& store_id, uint64_t index,
                       std::string* prev_tag, const TextEntry& e) {
  std::string plain;
  PutLe<uint64_t>(&plain, static_cast<uint64_t>(e.unix_seconds));
  plain += e.text;
  SecureRandom rng;
  const std::string sealed = secagg::AeadSeal(key, Aad(store_id, index, *prev_tag), plain, rng);
  secagg::CleanseString(plain);
  std::string out;
  PutLe<uint32_t>(&out, static_cast<uint32_t>(sealed.size()));
  out += sealed;
  *prev_tag = sealed.substr(sealed.size() - kTag);
  return out;
}

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
  if (options.retention_days < 0 || options.max_bytes < 0) {
    return absl::InvalidArgumentError("text store: retention limits must be >= 0");
  }
  FEDLORA_RETURN_IF_ERROR(MakeDirs(options.dir));
  if (::chmod(options.dir.c_str(), 0700) != 0) return Errno("cannot chmod", options.dir);
  TextStore s;
  s.options_ = options;
  s.options_.key.reset();
  s.path_ = options.dir + "/text.fls";
  if (options.key.has_value()) {
    s.key_ = *options.key;
  } else {
    FEDLORA_ASSIGN_OR_RETURN(s.key_, LoadOrCreateKey(options.key_file));
    s.key_path_ = options.key_file;
  }
  s.last_tag_ = std::string(kTag, '\0');
  auto data = ReadFileToString(s.path_);
  if (absl::IsNotFound(data.status())) {
    std::string id(kIdSize, '\0');
    SecureRandom rng;
    rng.Fill(reinterpret_cast<uint8_t*>(id.data()), id.size());
    s.store_id_ = id;
    const std::string header = std::string(kMagic, kMagicSize) + id;
    FEDLORA_RETURN_IF_ERROR(WriteFileWithMode(s.path_, header, 0600, ExistingFile::kRefuse));
    s.file_size_ = static_cast<int64_t>(header.size());
    s.open_ = true;
    return s;
  }
  if (!data.ok()) return data.status();
  const std::string& d = *data;
  if (d.size() < kHeaderSize || d.compare(0, kMagicSize, kMagic, kMagicSize) != 0) {
    return absl::DataLossError(absl::StrCat(
        s.path_, " is not a fedlora text store (hint: move it away; Forget() or a new "
        "directory starts an empty store)"));
  }
  s.store_id_ = d.substr(kMagicSize, kIdSize);
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
    auto plain = secagg::AeadOpen(s.key_, Aad(s.store_id_, index, s.last_tag_), sealed);
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
  s.open_ = true;
  FEDLORA_RETURN_IF_ERROR(s.ApplyLimits(now_unix));
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
  std::string tag = last_tag_;
  const TextEntry e{now_unix, text};
  std::string record = SealRecord(key_, store_id_, entries_.size(), &tag, e);
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
  entries_.push_back(e);
  last_tag_ = tag;
  return ApplyLimits(now_unix);
}

absl::StatusOr<std::vector<TextEntry>> TextStore::ReadAll(int64_t now_unix) {
  if (!open_) return absl::FailedPreconditionError("text store was forgotten (hint: open it again)");
  FEDLORA_RETURN_IF_ERROR(ApplyLimits(now_unix));
  return entries_;
}

absl::Status TextStore::ApplyLimits(int64_t now_unix) {
  const size_t before = entries_.size();
  if (options_.retention_days > 0) {
    const int64_t cutoff = now_unix - options_.retention_days * kDay;
    entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                  [&](const TextEntry& e) { return e.unix_seconds < cutoff; }),
                   entries_.end());
  }
  if (options_.max_bytes > 0) {
    int64_t bytes = text_bytes();
    size_t drop = 0;
    while (drop < entries_.size() && bytes > options_.max_bytes) {
      bytes -= static_cast<int64_t>(entries_[drop++].text.size());
    }
    entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(drop));
  }
  if (entries_.size() == before) return absl::OkStatus();
  std::string tag(kTag, '\0');
  std::string data = std::string(kMagic, kMagicSize) + store_id_;
  for (size_t i = 0; i < entries_.size(); ++i) {
    data += SealRecord(key_, store_id_, i, &tag, entries_[i]);
  }
  FEDLORA_RETURN_IF_ERROR(WriteFileWithMode(path_, data, 0600, ExistingFile::kReplace));
  file_size_ = static_cast<int64_t>(data.size());
  last_tag_ = tag;
  return absl::OkStatus();
}

absl::Status TextStore::Erase(const TextStoreOptions& options) {
  const std::string path = options.dir + "/text.fls";
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0) {
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
  }
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
  open_ = false;
  return absl::OkStatus();
}

}  // namespace fedlora::device
