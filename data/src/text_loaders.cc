// Loaders for generic sources: a directory of per-user text files, and JSONL.
#include <algorithm>
#include <filesystem>
#include <system_error>
#include <unordered_set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"
#include "nlohmann/json.hpp"
#include "raw_users.h"

namespace fedlora::data::internal {

namespace fs = std::filesystem;

void RawUserCollector::Add(const std::string& id, std::string line) {
  auto [it, inserted] = index_.emplace(id, users_.size());
  if (inserted) users_.push_back(RawUser{id, {}});
  users_[it->second].lines.push_back(std::move(line));
}

std::string SafeId(const std::string& name) {
  std::string id(absl::StripAsciiWhitespace(name));
  for (char& c : id) {
    if (c == ' ' || c == '/' || c == '\\' || c == '\t') c = '_';
  }
  return id;
}

absl::StatusOr<std::vector<RawUser>> ReadTextDir(const std::string& path) {
  std::error_code ec;
  std::vector<fs::path> files;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    if (p.filename().string().front() == '.') continue;
    if (!it->is_regular_file(ec)) continue;
    files.push_back(p);
  }
  if (ec)
    return absl::InvalidArgumentError(absl::StrCat("cannot list '", path, "': ", ec.message()));
  if (files.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no user files in directory '", path,
        "' (hint: a text-dir dataset holds one <user>.txt per user, one message per line)"));
  }
  std::sort(files.begin(), files.end());
  std::vector<RawUser> users;
  users.reserve(files.size());
  std::unordered_set<std::string> ids;
  for (const fs::path& p : files) {
    const std::string id = SafeId(p.stem().string());
    if (!ids.insert(id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("two files in '", path, "' give user id '", id,
                       "' (hint: user id = file name without extension; rename one)"));
    }
    FEDLORA_ASSIGN_OR_RETURN(std::string content, ReadFileToString(p.string()));
    RawUser user{id, {}};
    for (absl::string_view line : absl::StrSplit(content, '\n')) {
      line = absl::StripTrailingAsciiWhitespace(line);
      if (absl::StripAsciiWhitespace(line).empty()) continue;
      user.lines.emplace_back(line);
    }
    users.push_back(std::move(user));
  }
  return users;
}

absl::StatusOr<std::vector<RawUser>> ParseJsonl(const std::string& content,
                                                const std::string& path) {
  RawUserCollector users;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    ++line_no;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    const std::string where = absl::StrCat(path, ":", line_no);
    nlohmann::json j = nlohmann::json::parse(line.begin(), line.end(), nullptr,
                                             /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where,
                       ": not valid JSON (hint: JSONL wants one object per line, "
                       "{\"user\": \"u1\", \"text\": \"hello\"})"));
    }
    if (!j.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": expected a JSON object, got ", j.type_name()));
    }
    auto user_it = j.find("user");
    auto text_it = j.find("text");
    if (user_it == j.end() || text_it == j.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": object lacks \"user\" or \"text\" (hint: each line needs both)"));
    }
    std::string user;
    if (user_it->is_string()) {
      user = user_it->get<std::string>();
    } else if (user_it->is_number_integer()) {
      user = user_it->dump();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": \"user\" must be a string or an integer, got ", user_it->type_name()));
    }
    if (!text_it->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": \"text\" must be a string, got ", text_it->type_name()));
    }
    if (SafeId(user).empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": empty \"user\""));
    }
    std::string text = text_it->get<std::string>();
    if (absl::StripAsciiWhitespace(text).empty()) continue;
    users.Add(SafeId(user), std::move(text));
  }
  return users.Take();
}

}  // namespace fedlora::data::internal
