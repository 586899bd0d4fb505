#include "text_store_format.h"

#include "absl/strings/str_cat.h"
#include "fedlora/common/random.h"

namespace fedlora::device::text_store_internal {
namespace {

constexpr char kRingMagic[] = "FLTK1\n";
constexpr size_t kWrappedSize = secagg::kGcmNonceSize + secagg::Secret32::kSize + kTag;

std::string WrapAad(const std::string& store_id) { return "fedlora-text-key-v1" + store_id; }

}  // namespace

std::string RecordAad(bool v1, const std::string& store_id, uint64_t index,
                      const std::string& prev_tag) {
  std::string aad = v1 ? "fedlora-text-v1" : "fedlora-text-v2";
  aad += store_id;
  PutLe<uint64_t>(&aad, index);
  aad += prev_tag;
  return aad;
}

std::string SealRecord(const secagg::Secret32& key, const std::string& store_id, uint64_t index,
                       std::string* prev_tag, int64_t unix_seconds, const std::string& text) {
  std::string plain;
  PutLe<uint64_t>(&plain, static_cast<uint64_t>(unix_seconds));
  plain += text;
  SecureRandom rng;
  const std::string sealed =
      secagg::AeadSeal(key, RecordAad(false, store_id, index, *prev_tag), plain, rng);
  secagg::CleanseString(plain);
  std::string out;
  PutLe<uint32_t>(&out, static_cast<uint32_t>(sealed.size()));
  out += sealed;
  *prev_tag = sealed.substr(sealed.size() - kTag);
  return out;
}

std::string EncodeKeyRing(const std::vector<KeyRingEntry>& entries) {
  std::string out(kRingMagic, kMagicSize);
  out.push_back(static_cast<char>(entries.size()));
  for (const auto& e : entries) out += e.store_id + e.wrapped;
  return out;
}

absl::StatusOr<std::vector<KeyRingEntry>> DecodeKeyRing(const std::string& bytes,
                                                        const std::string& path) {
  const size_t entry = kIdSize + kWrappedSize;
  if (bytes.size() < kMagicSize + 1 || bytes.compare(0, kMagicSize, kRingMagic) != 0 ||
      bytes.size() != kMagicSize + 1 + entry * static_cast<uint8_t>(bytes[kMagicSize])) {
    return absl::DataLossError(
        absl::StrCat(path,
                     " is not a text store key ring (hint: restore the store folder as a whole, or "
                     "forget the store)"));
  }
  std::vector<KeyRingEntry> out;
  for (size_t pos = kMagicSize + 1; pos < bytes.size(); pos += entry) {
    out.push_back({bytes.substr(pos, kIdSize), bytes.substr(pos + kIdSize, kWrappedSize)});
  }
  return out;
}

KeyRingEntry WrapDataKey(const secagg::Secret32& store_key, const std::string& store_id,
                         const secagg::Secret32& data_key) {
  std::string raw(reinterpret_cast<const char*>(data_key.data()), data_key.size());
  SecureRandom rng;
  KeyRingEntry e{store_id, secagg::AeadSeal(store_key, WrapAad(store_id), raw, rng)};
  secagg::CleanseString(raw);
  return e;
}

absl::StatusOr<secagg::Secret32> UnwrapDataKey(const secagg::Secret32& store_key,
                                               const KeyRingEntry& entry) {
  auto raw = secagg::AeadOpen(store_key, WrapAad(entry.store_id), entry.wrapped);
  if (!raw.ok() || raw->size() != secagg::Secret32::kSize) {
    return absl::DataLossError(
        "the text store's data key failed authentication: this is not the store's key, or the "
        "key ring was altered (hint: restore the store and its key together; nothing was "
        "changed)");
  }
  secagg::Secret32 key(reinterpret_cast<const uint8_t*>(raw->data()));
  secagg::CleanseString(*raw);
  return key;
}

}  // namespace fedlora::device::text_store_internal
