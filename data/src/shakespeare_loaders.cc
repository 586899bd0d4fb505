// Loaders for Shakespeare by role (LEAF-style): the per-line TSV and plain play text.
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "raw_users.h"

namespace fedlora::data::internal {
namespace {

constexpr int kTsvColumns = 5;  // line_id, play, speaker, act.scene.line, text

absl::string_view StripCr(absl::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// A speaker line: non-empty, ends in ':', no leading space, and short enough to be a name.
bool IsSpeakerLine(absl::string_view line) {
  line = absl::StripTrailingAsciiWhitespace(line);
  if (line.size() < 2 || line.size() > 64 || line.back() != ':') return false;
  if (absl::ascii_isspace(static_cast<unsigned char>(line.front()))) return false;
  return line.find(':') == line.size() - 1;
}

}  // namespace

absl::StatusOr<std::vector<RawUser>> ParseShakespeareTsv(const std::string& content,
                                                         const std::string& path) {
  RawUserCollector users;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    ++line_no;
    line = StripCr(line);
    if (line.empty()) continue;
    std::vector<absl::string_view> cols = absl::StrSplit(line, '\t');
    if (line_no == 1 && cols[0] == "line_id") continue;  // Header row.
    if (static_cast<int>(cols.size()) != kTsvColumns) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", line_no, ": expected ", kTsvColumns,
          " tab-separated columns (line_id, play, speaker, act.scene.line, text), got ",
          cols.size(), " (hint: is this the LEAF plays_by_speaker.tsv layout?)"));
    }
    absl::string_view play = absl::StripAsciiWhitespace(cols[1]);
    absl::string_view speaker = absl::StripAsciiWhitespace(cols[2]);
    absl::string_view text = absl::StripAsciiWhitespace(cols[4]);
    if (play.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": empty play column"));
    }
    // A row without a speaker is a stage direction (one in the LEAF file), not dialogue.
    if (speaker.empty() || text.empty()) continue;
    users.Add(SafeId(absl::StrCat(play, "__", speaker)), std::string(text));
  }
  return users.Take();
}

bool LooksLikePlayText(const std::string& content) {
  bool prev_blank = true;
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    line = StripCr(line);
    if (prev_blank && IsSpeakerLine(line)) return true;
    prev_blank = absl::StripAsciiWhitespace(line).empty();
  }
  return false;
}

absl::StatusOr<std::vector<RawUser>> ParsePlayText(const std::string& content,
                                                   const std::string& path) {
  RawUserCollector users;
  std::string speaker;  // Empty until the first speaker line.
  bool prev_blank = true;
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    line = StripCr(line);
    const bool blank = absl::StripAsciiWhitespace(line).empty();
    if (prev_blank && IsSpeakerLine(line)) {
      absl::string_view name = absl::StripTrailingAsciiWhitespace(line);
      name.remove_suffix(1);  // The ':'.
      speaker = SafeId(std::string(name));
    } else if (!blank && !speaker.empty()) {
      users.Add(speaker, std::string(absl::StripTrailingAsciiWhitespace(line)));
    }
    prev_blank = blank;
  }
  std::vector<RawUser> out = users.Take();
  if (out.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path,
                     ": no speaker lines found (hint: play text wants a speaker's name alone on a "
                     "line ending in ':' after a blank line, as in tinyshakespeare.txt)"));
  }
  return out;
}

}  // namespace fedlora::data::internal
