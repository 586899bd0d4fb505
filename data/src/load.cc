// Format detection, option checks and the shared filter/split/limit steps of all loaders.
#include "fedlora/data/load.h"

#include <filesystem>
#include <fstream>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"
#include "raw_users.h"

namespace fedlora::data {
namespace {

namespace fs = std::filesystem;

constexpr char kFormatNames[] = "auto, dir, jsonl, shakespeare-tsv, play-text, personas";
constexpr size_t kSniffBytes = 64 * 1024;

bool IsPersonaSpec(const std::string& path) {
  return path == "personas" || absl::StartsWith(path, "personas:");
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

absl::StatusOr<std::vector<internal::RawUser>> ReadRaw(const std::string& path, DataFormat format) {
  if (format == DataFormat::kTextDir) {
    std::error_code ec;
    if (!fs::is_directory(path, ec)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", path,
                       "' is not a directory (hint: format 'dir' wants a directory of per-user "
                       "text files)"));
    }
    return internal::ReadTextDir(path);
  }
  FEDLORA_ASSIGN_OR_RETURN(std::string content, ReadFileToString(path));
  switch (format) {
    case DataFormat::kJsonl:
      return internal::ParseJsonl(content, path);
    case DataFormat::kShakespeareTsv:
      return internal::ParseShakespeareTsv(content, path);
    case DataFormat::kPlayText:
      return internal::ParsePlayText(content, path);
    default:
      break;
  }
  return absl::InternalError("ReadRaw: unexpected format");
}

}  // namespace

absl::StatusOr<DataFormat> ParseDataFormat(const std::string& name) {
  if (name == "auto") return DataFormat::kAuto;
  if (name == "dir") return DataFormat::kTextDir;
  if (name == "jsonl") return DataFormat::kJsonl;
  if (name == "shakespeare-tsv") return DataFormat::kShakespeareTsv;
  if (name == "play-text") return DataFormat::kPlayText;
  if (name == "personas") return DataFormat::kPersonas;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown data format '", name, "' (hint: use one of ", kFormatNames, ")"));
}

const char* DataFormatName(DataFormat format) {
  switch (format) {
    case DataFormat::kAuto:
      return "auto";
    case DataFormat::kTextDir:
      return "dir";
    case DataFormat::kJsonl:
      return "jsonl";
    case DataFormat::kShakespeareTsv:
      return "shakespeare-tsv";
    case DataFormat::kPlayText:
      return "play-text";
    case DataFormat::kPersonas:
      return "personas";
  }
  return "?";
}

absl::StatusOr<DataFormat> DetectDataFormat(const std::string& path) {
  std::error_code ec;
  const bool exists = fs::exists(path, ec);
  if (!exists && IsPersonaSpec(path)) return DataFormat::kPersonas;
  if (!exists) {
    return absl::NotFoundError(
        absl::StrCat("data path '", path,
                     "' does not exist (hint: check the path, or use 'personas' for the "
                     "built-in synthetic dataset)"));
  }
  if (fs::is_directory(path, ec)) return DataFormat::kTextDir;
  const std::string ext = Lower(fs::path(path).extension().string());
  if (ext == ".jsonl") return DataFormat::kJsonl;
  if (ext == ".tsv") return DataFormat::kShakespeareTsv;
  if (ext == ".txt") {
    std::ifstream in(path, std::ios::binary);
    std::string head(kSniffBytes, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    head.resize(static_cast<size_t>(in.gcount()));
    if (internal::LooksLikePlayText(head)) return DataFormat::kPlayText;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "cannot tell the data format of '", path,
      "' (hint: a directory is per-user text files, *.jsonl is JSONL, *.tsv is Shakespeare TSV, "
      "*.txt with 'NAME:' speaker lines is play text; or pass the format: ",
      kFormatNames, ")"));
}

absl::StatusOr<PersonaOptions> ParsePersonaSpec(const std::string& spec) {
  PersonaOptions opts;
  if (spec == "personas" || spec.empty()) return opts;
  if (!absl::StartsWith(spec, "personas:")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad personas spec '", spec, "' (hint: 'personas' or 'personas:users=N,seed=S,lines=L')"));
  }
  for (absl::string_view kv : absl::StrSplit(spec.substr(9), ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    uint64_t v = 0;
    if (!absl::SimpleAtoi(p.second, &v) || (p.first != "seed" && v > 10'000'000)) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad value in personas spec '", spec, "' at '", kv, "'"));
    }
    if (p.first == "users") {
      opts.users = static_cast<int>(v);
    } else if (p.first == "seed") {
      opts.seed = v;
    } else if (p.first == "lines") {
      opts.lines_per_user = static_cast<int>(v);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown key '", p.first, "' in personas spec '", spec, "' (hint: users, seed, lines)"));
    }
  }
  return opts;
}

absl::StatusOr<FederatedDataset> LoadFederatedDataset(const std::string& path,
                                                      const LoadOptions& options) {
  if (!(options.test_fraction >= 0 && options.test_fraction < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("test_fraction must be in [0, 1), got ", options.test_fraction));
  }
  if (options.min_lines < 0 || options.max_users < 0) {
    return absl::InvalidArgumentError("min_lines and max_users must be >= 0");
  }
  DataFormat format = options.format;
  if (format == DataFormat::kAuto) {
    FEDLORA_ASSIGN_OR_RETURN(format, DetectDataFormat(path));
  }

  std::vector<internal::RawUser> raw;
  FederatedDataset ds;
  if (format == DataFormat::kPersonas) {
    FEDLORA_ASSIGN_OR_RETURN(PersonaOptions popts, ParsePersonaSpec(path));
    popts.test_fraction = options.test_fraction;
    FederatedDataset generated = GeneratePersonas(popts);
    ds.source = generated.source;
    for (UserData& u : generated.users) {
      std::vector<std::string> lines = std::move(u.train);
      lines.insert(lines.end(), u.test.begin(), u.test.end());
      raw.push_back({std::move(u.id), std::move(lines)});
    }
  } else {
    FEDLORA_ASSIGN_OR_RETURN(raw, ReadRaw(path, format));
    ds.source = absl::StrCat(DataFormatName(format), ":", path);
  }
  if (raw.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' holds no users"));
  }

  for (internal::RawUser& u : raw) {
    if (static_cast<int64_t>(u.lines.size()) < options.min_lines) continue;
    if (options.max_users > 0 && static_cast<int>(ds.users.size()) >= options.max_users) break;
    ds.users.push_back(SplitByPosition(std::move(u.id), std::move(u.lines), options.test_fraction));
  }
  if (ds.users.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no user in '", path, "' has at least ", options.min_lines, " lines (",
                     raw.size(), " users before the filter; hint: lower --min-lines)"));
  }
  return ds;
}

}  // namespace fedlora::data
