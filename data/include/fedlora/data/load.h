// Loading federated text datasets from disk (or generating the built-in personas).
//
// Supported sources (DataFormat):
//   kTextDir         a directory of per-user text files; user id = file name without its
//                    extension, one message per non-empty line. Hidden files and
//                    subdirectories are ignored; users are ordered by file name.
//   kJsonl           a .jsonl file of objects {"user": <string|integer>, "text": <string>},
//                    several lines per user allowed; users in order of first appearance.
//   kShakespeareTsv  LEAF-style Shakespeare: a TSV with columns line_id, play, speaker,
//                    act.scene.line, text (an optional header row starting with "line_id" is
//                    skipped); one user per (play, speaker) role, id "<play>__<speaker>" with
//                    spaces replaced by '_'; users in order of first appearance. Rows with
//                    an empty speaker (stage directions) or empty text are skipped.
//   kPlayText        plain play text (tinyshakespeare.txt): a speaker's name on its own line
//                    ending in ':' at the start of the file or after a blank line starts a
//                    speech; one user per speaker name (spaces replaced by '_'). Text before
//                    the first speaker is ignored.
//   kPersonas        the built-in synthetic keyboard personas (personas.h); `path` is a spec
//                    "personas" or "personas:users=N,seed=S,lines=L" (any subset, any order).
// Every loader then (1) drops users with fewer than min_lines lines, (2) splits each user's
// lines by position (SplitByPosition with test_fraction) and (3) keeps the first max_users.
#ifndef FEDLORA_DATA_LOAD_H_
#define FEDLORA_DATA_LOAD_H_

#include <string>

#include "absl/status/statusor.h"
#include "fedlora/data/dataset.h"
#include "fedlora/data/personas.h"

namespace fedlora::data {

enum class DataFormat { kAuto, kTextDir, kJsonl, kShakespeareTsv, kPlayText, kPersonas };

// Parses "auto", "dir", "jsonl", "shakespeare-tsv", "play-text" or "personas".
// INVALID_ARGUMENT (listing the accepted names) for anything else.
absl::StatusOr<DataFormat> ParseDataFormat(const std::string& name);

// Returns the name ParseDataFormat accepts for `format`.
const char* DataFormatName(DataFormat format);

struct LoadOptions {
  DataFormat format = DataFormat::kAuto;
  int min_lines = 0;           // Drop users with fewer lines (train + test) than this.
  double test_fraction = 0.2;  // In [0, 1); see NumTestLines().
  int max_users = 0;           // Keep only the first max_users users; 0 = all.
};

// Returns the format of `path` for kAuto: an existing directory -> kTextDir; "*.jsonl" ->
// kJsonl; "*.tsv" -> kShakespeareTsv; "*.txt" whose first 64 KiB hold a `NAME:` speaker line
// -> kPlayText; "personas" or "personas:..." (not an existing file) -> kPersonas.
// NOT_FOUND if the path does not exist; INVALID_ARGUMENT (with a hint to pass the format
// explicitly) if the kind cannot be told.
absl::StatusOr<DataFormat> DetectDataFormat(const std::string& path);

// Parses a personas spec ("personas" or "personas:users=N,seed=S,lines=L") over the
// defaults of PersonaOptions. INVALID_ARGUMENT for unknown keys or malformed numbers.
absl::StatusOr<PersonaOptions> ParsePersonaSpec(const std::string& spec);

// Loads (or generates) the dataset at `path`.
// Errors: NOT_FOUND for a missing path; INVALID_ARGUMENT for malformed content (the message
// names the file and 1-based line number), bad options (test_fraction outside [0, 1),
// negative min_lines / max_users), an empty source, or when no user has min_lines lines.
absl::StatusOr<FederatedDataset> LoadFederatedDataset(const std::string& path,
                                                      const LoadOptions& options = {});

}  // namespace fedlora::data

#endif  // FEDLORA_DATA_LOAD_H_
