// Reading a user's text for `train` and `eval`: a file (one message per line) or a directory
// of such files.
#ifndef FEDLORA_TOOLS_TEXT_INPUT_H_
#define FEDLORA_TOOLS_TEXT_INPUT_H_

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "fedlora/common/file_util.h"

namespace fedlora::cli {

// OK iff `text` is UTF-8 without NUL bytes; else INVALID_ARGUMENT naming `path`, the byte
// offset and the byte (a binary file given as text).
inline absl::Status CheckUtf8Text(const std::string& text, const std::string& path) {
  const auto* b = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = b[i];
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    bool ok = len > 0 && c != 0 && i + len <= n && !(len == 2 && c < 0xC2);
    for (size_t k = 1; ok && k < len; ++k) ok = (b[i + k] >> 6) == 0x2;
    if (ok && len == 3) {
      const unsigned cp = ((c & 0xF) << 12) | ((b[i + 1] & 0x3F) << 6) | (b[i + 2] & 0x3F);
      ok = cp >= 0x800 && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    if (ok && len == 4) {
      const unsigned cp = ((c & 0x7) << 18) | ((b[i + 1] & 0x3F) << 12) | ((b[i + 2] & 0x3F) << 6) |
                          (b[i + 3] & 0x3F);
      ok = cp >= 0x10000 && cp <= 0x10FFFF;
    }
    if (!ok) {
      char byte[8];
      std::snprintf(byte, sizeof(byte), "0x%02X", c);
      return absl::InvalidArgumentError(absl::StrCat(
          path, " is not UTF-8 text: ", c == 0 ? "NUL byte" : "invalid byte ", c == 0 ? "" : byte,
          " at byte offset ", i, " (hint: give a plain-text file, one message per line)"));
    }
    i += len;
  }
  return absl::OkStatus();
}

// Reads one text file: a directory, an unreadable file or non-UTF-8 content is an error.
inline absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  if (std::filesystem::is_directory(path)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is a directory (hint: give the text files inside it)"));
  }
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  if (auto s = CheckUtf8Text(*text, path); !s.ok()) return s;
  return text;
}

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
    auto text = ReadTextFile(f);
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
