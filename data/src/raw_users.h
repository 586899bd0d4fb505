// Internal: per-format parsers produce raw per-user line lists; load.cc filters and splits.
#ifndef FEDLORA_DATA_SRC_RAW_USERS_H_
#define FEDLORA_DATA_SRC_RAW_USERS_H_

#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"

namespace fedlora::data::internal {

struct RawUser {
  std::string id;
  std::vector<std::string> lines;
};

// Collects lines per user id, keeping users in order of first appearance.
class RawUserCollector {
 public:
  void Add(const std::string& id, std::string line);
  std::vector<RawUser> Take() { return std::move(users_); }

 private:
  std::vector<RawUser> users_;
  std::unordered_map<std::string, size_t> index_;
};

// Replaces spaces and path separators by '_' so an id can name a file.
std::string SafeId(const std::string& name);

// Each returns the users found in one source; errors name `path` and the line number.
absl::StatusOr<std::vector<RawUser>> ReadTextDir(const std::string& path);
absl::StatusOr<std::vector<RawUser>> ParseJsonl(const std::string& content,
                                                const std::string& path);
absl::StatusOr<std::vector<RawUser>> ParseShakespeareTsv(const std::string& content,
                                                         const std::string& path);
absl::StatusOr<std::vector<RawUser>> ParsePlayText(const std::string& content,
                                                   const std::string& path);

// True if `content` holds at least one play-text speaker line (used by format detection).
bool LooksLikePlayText(const std::string& content);

}  // namespace fedlora::data::internal

#endif  // FEDLORA_DATA_SRC_RAW_USERS_H_
