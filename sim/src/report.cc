// Record serialization and ReportWriter: rounds.csv / rounds.jsonl as rounds come,
// summary.json, plots and report.md at the end.
#include "fedlora/sim/report.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"
#include "report_internal.h"

namespace fedlora::sim {
namespace {

constexpr char kCsv[] = "rounds.csv";
constexpr char kJsonl[] = "rounds.jsonl";

// Serializes without throwing on invalid UTF-8 in user ids or reasons.
std::string Dump(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json OptionalJson(const std::optional<EvalRecord>& e) {
  return e ? e->ToJson() : nlohmann::json(nullptr);
}

// Writes `data` to `path` opened with `flags` (O_TRUNC or O_APPEND). RESOURCE_EXHAUSTED for
// a full disk or quota, INTERNAL for other errors; both name the file.
absl::Status WriteToFile(const std::string& path, const std::string& data, int flags) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot open '", path,
                                            "' for writing: ", std::strerror(errno),
                                            " (hint: check the permissions of run.out)"));
  }
  const char* p = data.data();
  size_t left = data.size();
  int err = 0;
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::close(fd) != 0 && err == 0 && errno != EINTR) err = errno;
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) {
    return absl::ResourceExhaustedError(
        absl::StrCat("writing '", path, "' failed: ", std::strerror(err),
                     " (hint: the disk is full; free space or choose another run.out)"));
  }
  if (err != 0) {
    return absl::InternalError(absl::StrCat("writing '", path, "' failed: ", std::strerror(err)));
  }
  return absl::OkStatus();
}

const char* const kPopulations[] = {"participants", "heldout"};
const char* const kVariants[] = {"base", "global", "personalized"};

std::string CsvHeader() {
  std::vector<std::string> cols = {
      "round",   "sampled",           "survivors",           "dropped",
      "aborted", "train_loss",        "mean_update_norm",    "clipped_fraction",
      "clip",    "epsilon_observers", "epsilon_coordinator", "seconds"};
  for (const char* pop : kPopulations) {
    for (const char* var : kVariants) {
      for (const char* m : {"ppl", "top1", "top3w"})
        cols.push_back(absl::StrCat(pop, "_", var, "_", m));
    }
  }
  cols.push_back("shards");
  cols.push_back("shard_min");
  return absl::StrCat(absl::StrJoin(cols, ","), "\n");
}

std::string G(double v) { return absl::StrFormat("%.6g", v); }

}  // namespace

// JSON has no infinity: an unbounded epsilon is null.
nlohmann::json internal::EpsilonJson(double epsilon) {
  if (std::isfinite(epsilon)) return epsilon;
  return nullptr;
}

namespace {

std::string CsvRow(const RoundRecord& r) {
  std::vector<std::string> cells = {absl::StrCat(r.round),
                                    absl::StrCat(r.sampled),
                                    absl::StrCat(r.survivors),
                                    absl::StrCat(r.dropped.size()),
                                    r.aborted ? "1" : "0",
                                    G(r.train_loss),
                                    G(r.mean_update_norm),
                                    G(r.clipped_fraction),
                                    G(r.clip),
                                    G(r.epsilon),
                                    G(r.epsilon_coordinator),
                                    G(r.seconds)};
  for (const auto* eval : {&r.eval_participants, &r.eval_heldout}) {
    for (const Metrics* m : {eval->has_value() ? &(*eval)->base : nullptr,
                             eval->has_value() ? &(*eval)->global : nullptr,
                             eval->has_value() ? &(*eval)->personalized : nullptr}) {
      cells.push_back(m ? G(m->perplexity) : "");
      cells.push_back(m ? G(m->next_token_top1) : "");
      cells.push_back(m ? G(m->next_word_top3) : "");
    }
  }
  cells.push_back(absl::StrCat(r.shards));
  cells.push_back(absl::StrCat(r.shard_min));
  return absl::StrCat(absl::StrJoin(cells, ","), "\n");
}

}  // namespace

nlohmann::json Metrics::ToJson() const {
  return {{"perplexity", perplexity},
          {"next_token_top1", next_token_top1},
          {"next_word_top3", next_word_top3},
          {"keystroke_savings", keystroke_savings},
          {"tokens", tokens},
          {"words", words}};
}

nlohmann::json UserShift::ToJson() const {
  const int n = gain + lose + same;
  return {{"gain", gain},
          {"lose", lose},
          {"same", same},
          {"share_gain", n ? double(gain) / n : 0.0},
          {"share_lose", n ? double(lose) / n : 0.0}};
}

nlohmann::json MethodRecord::ToJson() const {
  return {{"method", method},
          {"metrics", metrics.ToJson()},
          {"kept", kept},
          {"seconds", seconds},
          {"users_vs_global",
           {{"next_word_top3", vs_global_top3.ToJson()},
            {"keystroke_savings", vs_global_keystrokes.ToJson()}}}};
}

nlohmann::json EvalRecord::ToJson() const {
  nlohmann::json m = nlohmann::json::array();
  for (const auto& r : methods) m.push_back(r.ToJson());
  return {{"population", population},
          {"personalize_method", personalize_method},
          {"suggest_latency_ms", {{"p50", suggest_p50_ms}, {"p95", suggest_p95_ms},
                                  {"calls", suggest_calls}}},
          {"methods", m},
          {"users", users},
          {"base", base.ToJson()},
          {"global", global.ToJson()},
          {"personalized", personalized.ToJson()},
          {"personalized_kept", personalized_kept},
          {"users_global_vs_base",
           {{"next_word_top3", global_vs_base_top3.ToJson()},
            {"keystroke_savings", global_vs_base_keystrokes.ToJson()}}},
          {"users_personalized_vs_global",
           {{"next_word_top3", personalized_vs_global_top3.ToJson()},
            {"keystroke_savings", personalized_vs_global_keystrokes.ToJson()}}}};
}

nlohmann::json DropRecord::ToJson() const {
  return {{"device", device}, {"user", user}, {"phase", phase}, {"reason", reason}};
}

nlohmann::json RoundRecord::ToJson() const {
  nlohmann::json drops = nlohmann::json::array();
  for (const DropRecord& d : dropped) drops.push_back(d.ToJson());
  nlohmann::json j = {{"round", round},
                      {"sampled", sampled},
                      {"survivors", survivors},
                      {"aborted", aborted},
                      {"abort_reason", abort_reason},
                      {"dropped", std::move(drops)},
                      {"train_loss", train_loss},
                      {"mean_update_norm", mean_update_norm},
                      {"clipped_fraction", clipped_fraction},
                      {"clip", clip},
                      {"epsilon_observers", epsilon},
                      {"epsilon_coordinator", internal::EpsilonJson(epsilon_coordinator)},
                      {"shards", shards},
                      {"shard_min", shard_min},
                      {"shards_on_aggregators", shards_on_aggregators},
                      {"seconds", seconds},
                      {"train_seconds", train_seconds},
                      {"privacy_seconds", privacy_seconds}};
  if (eval_participants) j["eval_participants"] = eval_participants->ToJson();
  if (eval_heldout) j["eval_heldout"] = eval_heldout->ToJson();
  return j;
}

nlohmann::json Summary::ToJson() const {
  return {{"config", config},
          {"rounds_completed", rounds_completed},
          {"epsilon_observers", epsilon},
          {"epsilon_coordinator", internal::EpsilonJson(epsilon_coordinator)},
          {"max_rounds_per_device", max_rounds_per_device},
          {"secagg_shards",
           {{"per_round", shards_per_round},
            {"shard_min", shard_min},
            {"on_aggregators", aggregator_shards}}},
          {"delta", delta},
          {"epsilon_holds_against",
           {{"epsilon_observers",
             "anyone who sees only the released adapters (" + privacy_assumption + ")"},
            {"epsilon_coordinator",
             "the coordinator itself: each device's rounds without amplification by sampling; "
             "the worst device"}}},
          {"privacy_assumption", privacy_assumption},
          {"randomness", randomness},
          {"engine", engine},
          {"stop_reason", stop_reason},
          {"participants", OptionalJson(participants)},
          {"heldout", OptionalJson(heldout)},
          {"seconds", seconds},
          {"adapter_dir", adapter_dir},
          {"base_model", {{"dir", base_model_dir}, {"scheme", base_model_scheme}}}};
}

absl::Status PrepareOutputDir(const std::string& out_dir, bool force) {
  if (out_dir.empty()) return absl::InvalidArgumentError("sim: run.out is empty");
  FEDLORA_RETURN_IF_ERROR(MakeDirs(out_dir));
  if (!force) {
    for (const char* name : {kCsv, kJsonl, "summary.json", "report.md"}) {
      const std::string path = absl::StrCat(out_dir, "/", name);
      if (::access(path.c_str(), F_OK) == 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("sim: ", path,
                         " is from an earlier run (hint: pass --force to overwrite it, or "
                         "choose another --out)"));
      }
    }
  }
  // Find an unwritable directory now, not after all the training.
  const std::string probe = absl::StrCat(out_dir, "/.fedlora-write-test");
  FEDLORA_RETURN_IF_ERROR(WriteToFile(probe, "ok\n", O_TRUNC));
  ::unlink(probe.c_str());
  return absl::OkStatus();
}

absl::StatusOr<ReportWriter> ReportWriter::Open(const std::string& out_dir) {
  FEDLORA_RETURN_IF_ERROR(MakeDirs(out_dir));
  ReportWriter w;
  w.out_dir_ = out_dir;
  FEDLORA_RETURN_IF_ERROR(WriteToFile(absl::StrCat(out_dir, "/", kCsv), CsvHeader(), O_TRUNC));
  FEDLORA_RETURN_IF_ERROR(WriteToFile(absl::StrCat(out_dir, "/", kJsonl), "", O_TRUNC));
  return w;
}

absl::Status ReportWriter::AppendRound(const RoundRecord& record) {
  FEDLORA_RETURN_IF_ERROR(WriteToFile(absl::StrCat(out_dir_, "/", kCsv), CsvRow(record), O_APPEND));
  FEDLORA_RETURN_IF_ERROR(WriteToFile(absl::StrCat(out_dir_, "/", kJsonl),
                                      absl::StrCat(Dump(record.ToJson()), "\n"), O_APPEND));
  rounds_.push_back(record);
  return absl::OkStatus();
}

absl::Status ReportWriter::Finish(const Summary& summary) {
  FEDLORA_RETURN_IF_ERROR(WriteFileAtomic(absl::StrCat(out_dir_, "/summary.json"),
                                          absl::StrCat(Dump(summary.ToJson(), 2), "\n")));
  internal::PlotOutcome plots;
  const auto it = summary.config.find("output.plots");
  if (it != summary.config.end() && it->is_boolean() && !it->get<bool>()) {
    plots.note = "Plots are off (output.plots = false).";
  } else {
    plots = internal::DrawPlots(out_dir_, rounds_);
  }
  return WriteFileAtomic(absl::StrCat(out_dir_, "/report.md"),
                         internal::RenderReportMarkdown(summary, rounds_, plots));
}

// Rounds that ran no session (0: nobody sampled, or aborted at selection) are left out.
std::string ShardCountsText(const std::vector<int>& per_round) {
  int lo = 0, hi = 0;
  for (int k : per_round) {
    if (k <= 0) continue;
    lo = lo == 0 ? k : std::min(lo, k);
    hi = std::max(hi, k);
  }
  if (lo == hi) return absl::StrCat(hi);
  return absl::StrCat(lo, " to ", hi, " (rounds.csv, column shards)");
}

std::string AggregatorShardsText(const std::map<std::string, int64_t>& aggregator_shards) {
  if (aggregator_shards.empty()) return "";
  int64_t total = 0;
  std::vector<std::string> each;
  for (const auto& [name, n] : aggregator_shards) {
    total += n;
    each.push_back(absl::StrCat(name, " ", n));
  }
  return absl::StrCat(total, " (", absl::StrJoin(each, ", "), ")");
}

}  // namespace fedlora::sim
