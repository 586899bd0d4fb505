// The INI reader of SimConfig (ApplyConfigText / ApplyConfigFile / ApplyOverride): locates
// each "section.key = value" and reports errors with file, line and key.
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/sim/sim_config.h"
#include "sim_config_internal.h"

namespace fedlora::sim {
namespace {

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

absl::string_view AfterDot(absl::string_view key) {
  const size_t dot = key.find('.');
  return dot == absl::string_view::npos ? key : key.substr(dot + 1);
}

// Sets one key; `where` ("file:line" or "command line") prefixes every error.
absl::Status SetKey(const std::string& where, const std::string& key, const std::string& value,
                    SimConfig* config) {
  std::string problem;
  if (!internal::SetKnownKey(key, value, config, &problem)) {
    const std::string suggestion = internal::SuggestKey(key);
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": unknown key '", key, "'",
                     suggestion.empty() ? " (hint: docs/sim.md lists every key)"
                                        : absl::StrCat(" (did you mean ", suggestion, "?)")));
  }
  if (!problem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", key, ": ", problem));
  }
  return absl::OkStatus();
}

std::string Unquote(absl::string_view v) {
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) {
    v = v.substr(1, v.size() - 2);
  }
  return std::string(v);
}

// Strips a trailing " # comment" / " ; comment" (the marker must follow whitespace, so
// values such as "a#b" survive).
absl::string_view StripInlineComment(absl::string_view line) {
  for (size_t i = 1; i < line.size(); ++i) {
    if ((line[i] == '#' || line[i] == ';') && absl::ascii_isspace(line[i - 1])) {
      return absl::StripTrailingAsciiWhitespace(line.substr(0, i));
    }
  }
  return line;
}

}  // namespace

namespace internal {

std::string SuggestKey(const std::string& key) {
  std::string best;
  size_t best_score = std::string::npos;
  const absl::string_view tail = AfterDot(key);
  for (const ConfigKeyDoc& k : ConfigKeys()) {
    size_t score = EditDistance(key, k.key);
    const absl::string_view known_tail = AfterDot(k.key);
    if (known_tail == tail) score = std::min<size_t>(score, 1);  // right key, wrong section
    if (tail.size() >= 3 && absl::StartsWith(known_tail, tail)) {
      score = std::min<size_t>(score, 2);  // abbreviated, e.g. privacy.noise
    }
    if (score < best_score) {
      best_score = score;
      best = k.key;
    }
  }
  const size_t limit = std::max<size_t>(2, key.size() / 3);
  return best_score <= limit ? best : "";
}

}  // namespace internal

absl::Status ApplyConfigText(const std::string& text, const std::string& source,
                             SimConfig* config) {
  std::set<std::string> sections;
  for (const ConfigKeyDoc& k : ConfigKeys()) sections.insert(k.key.substr(0, k.key.find('.')));
  std::map<std::string, int> seen;  // key -> line where it was set
  std::string section;
  int line_no = 0;
  absl::string_view rest = text;
  if (absl::StartsWith(rest, "\xEF\xBB\xBF")) rest.remove_prefix(3);  // UTF-8 BOM
  for (absl::string_view raw : absl::StrSplit(rest, '\n')) {
    ++line_no;
    const std::string where = absl::StrCat(source, ":", line_no);
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    line = StripInlineComment(line);
    if (line.front() == '[') {
      if (line.back() != ']') {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": malformed section header '", line, "' (hint: write [section])"));
      }
      section = std::string(absl::StripAsciiWhitespace(line.substr(1, line.size() - 2)));
      if (sections.count(section) == 0) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": unknown section [", section,
                                                       "] (known: ", absl::StrJoin(sections, ", "),
                                                       ")"));
      }
      continue;
    }
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": malformed line '", line, "' (hint: expected 'key = value' or '[section]')"));
    }
    const std::string name(absl::StripAsciiWhitespace(line.substr(0, eq)));
    const std::string value = Unquote(absl::StripAsciiWhitespace(line.substr(eq + 1)));
    if (name.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": malformed line '", line, "': the key before '=' is empty"));
    }
    std::string key = name;
    if (name.find('.') == std::string::npos) {
      if (section.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": key '", name, "' outside any [section]", [&] {
              const std::string s = internal::SuggestKey(name);
              return s.empty() ? std::string(" (hint: add a [section] header)")
                               : absl::StrCat(" (did you mean ", s, "?)");
            }()));
      }
      key = absl::StrCat(section, ".", name);
    }
    auto [it, inserted] = seen.emplace(key, line_no);
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", key, " is set twice (first at line ", it->second, ")"));
    }
    FEDLORA_RETURN_IF_ERROR(SetKey(where, key, value, config));
  }
  return absl::OkStatus();
}

absl::Status ApplyConfigFile(const std::string& path, SimConfig* config) {
  FEDLORA_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ApplyConfigText(text, path, config);
}

absl::Status ApplyOverride(const std::string& key, const std::string& value, SimConfig* config) {
  return SetKey("command line", std::string(absl::StripAsciiWhitespace(key)),
                std::string(absl::StripAsciiWhitespace(value)), config);
}

}  // namespace fedlora::sim
