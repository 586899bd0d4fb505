// BlobCache: the one shared, immutable in-memory copy of each blob that download streams are
// serving. A blob is read from the store and its SHA-256 verified once, when the first stream
// asks for it; every later stream of the same blob shares that copy; it is freed when the last
// stream holding it ends. Thread-safe.
#ifndef FEDLORA_COORDINATOR_SRC_BLOB_CACHE_H_
#define FEDLORA_COORDINATOR_SRC_BLOB_CACHE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"

namespace fedlora::coordinator::internal {

class BlobCache {
 public:
  using Blob = std::shared_ptr<const std::string>;
  using Loader = std::function<absl::StatusOr<std::string>()>;

  // Returns the blob whose SHA-256 (lowercase hex) is `sha256_hex`: the copy some stream already
  // holds, else `load()`'s bytes, verified. Concurrent calls for the same blob load it once.
  // Fails with load's status, or DATA_LOSS when the loaded bytes do not hash to `sha256_hex`.
  absl::StatusOr<Blob> Get(const std::string& sha256_hex, const Loader& load);

  // Bytes of the blobs held now (by at least one stream).
  size_t BytesHeld() const;
  // Times Get called `load` (store reads).
  uint64_t Loads() const;

 private:
  struct Entry {
    std::shared_ptr<std::mutex> load_mu = std::make_shared<std::mutex>();
    std::weak_ptr<const std::string> blob;
  };
  struct State {
    mutable std::mutex mu;
    std::map<std::string, Entry> entries;
    size_t bytes = 0;
    uint64_t loads = 0;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace fedlora::coordinator::internal

#endif  // FEDLORA_COORDINATOR_SRC_BLOB_CACHE_H_
