// Reading a user's text for `train` and `eval`: a file (one message per line) or a directory
// of such files.
#ifndef FEDLORA_TOOLS_TEXT_INPUT_H_
#define FEDLORA_TOOLS_TEXT_INPUT_H_

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "fedlora/common/file_util.h"

namespace fedlora::cli {

inline absl::StatusOr<std::vector<std::string>> ReadTextLines(
    const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const auto& p : paths) {
    if (fs::is_directory(p)) {
      std::vector<std::string> in_dir;
      for (const auto& e : fs::directory_iterator(p)) {
        if (e.is_regular_file()) in_dir.push_back(e.path().string());
      }
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else {
      files.push_back(p);
    }
  }
  std::vector<std::string> lines;
  for (const auto& f : files) {
    auto text = ReadFileToString(f);
    if (!text.ok()) return text.status();
    for (absl::string_view l : absl::StrSplit(*text, '\n', absl::SkipWhitespace()))
      lines.emplace_back(l);
  }
  if (lines.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no text found in ", absl::StrJoin(paths, ", "),
                     " (hint: give a text file or a directory of them)"));
  }
  return lines;
}

}  // namespace fedlora::cli

#endif  // FEDLORA_TOOLS_TEXT_INPUT_H_
