#include "blob_cache.h"

#include "absl/strings/str_cat.h"
#include "fedlora/common/encoding.h"

namespace fedlora::coordinator::internal {

absl::StatusOr<BlobCache::Blob> BlobCache::Get(const std::string& sha256_hex, const Loader& load) {
  std::shared_ptr<std::mutex> load_mu;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    Entry& e = state_->entries[sha256_hex];
    if (Blob held = e.blob.lock()) return held;
    load_mu = e.load_mu;
  }
  // One loader per blob at a time; others wait here and then find its copy.
  std::lock_guard<std::mutex> loading(*load_mu);
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    auto it = state_->entries.find(sha256_hex);
    if (it != state_->entries.end()) {
      if (Blob held = it->second.blob.lock()) return held;
    }
    state_->loads++;
  }
  absl::StatusOr<std::string> bytes = load();
  if (!bytes.ok()) return bytes.status();
  if (HexEncode(Sha256(*bytes)) != sha256_hex) {
    return absl::DataLossError(
        absl::StrCat("blob ", sha256_hex,
                     " read from the store does not hash to its name (hint: the state "
                     "folder's blobs/ was modified or is corrupt; restore it from a backup)"));
  }
  const size_t size = bytes->size();
  std::shared_ptr<State> state = state_;
  Blob blob(new std::string(std::move(*bytes)), [state, sha256_hex, size](const std::string* p) {
    delete p;
    std::lock_guard<std::mutex> lock(state->mu);
    state->bytes -= size;
    auto it = state->entries.find(sha256_hex);
    if (it != state->entries.end() && it->second.blob.expired()) state->entries.erase(it);
  });
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->entries[sha256_hex].blob = blob;
  state_->bytes += size;
  return blob;
}

size_t BlobCache::BytesHeld() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->bytes;
}

uint64_t BlobCache::Loads() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->loads;
}

}  // namespace fedlora::coordinator::internal
